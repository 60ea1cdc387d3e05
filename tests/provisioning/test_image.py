"""First-boot image preparation on FAT images built here (mkfs.vfat + mtools, no mount)."""

from __future__ import annotations

import email
import hashlib
import lzma
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from agent.errors import ProvisioningError
from provisioning import image as img
from provisioning.cli import main

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("mkfs.vfat", "mcopy", "mdir", "mmd", "mdel")),
    reason="needs dosfstools (mkfs.vfat) and mtools (apt-get install dosfstools mtools)",
)

ENV = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
CMDLINE = "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 rootwait\n"
CONFIG = (
    '[device]\nid = "op-img-01"\nsite = "north/pass/post-9"\n\n[mqtt]\nurls = ["mqtts://b:8883"]\n'
)
TICKET = {
    "device_id": "op-img-01",
    "token": "t0k3n-very-secret-0123456789",
    "broker_url": "mqtts://enrol.example:8884",
    "ca_pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
}


def _put(image: Path, offset: int, name: str, data: str) -> None:
    src = image.parent / f".src-{name.replace('/', '_')}"
    src.write_text(data)
    subprocess.run(
        ["mcopy", "-o", "-i", f"{image}@@{offset}", str(src), f"::/{name}"],
        check=True,
        env=ENV,
        capture_output=True,
    )
    src.unlink()


def _get(image: Path, offset: int, name: str) -> str | None:
    proc = subprocess.run(
        ["mcopy", "-n", "-i", f"{image}@@{offset}", f"::/{name}", "-"],
        env=ENV,
        capture_output=True,
    )
    return proc.stdout.decode() if proc.returncode == 0 else None


def make_disk_image(path: Path, files: dict[str, str]) -> int:
    """An MBR disk image with a FAT32-LBA boot partition at 1 MiB, like Raspberry Pi OS."""
    start, sectors = 2048, 65536
    with path.open("wb") as fh:
        mbr = bytearray(512)
        mbr[446:462] = bytes([0, 0, 0, 0, 0x0C, 0, 0, 0]) + struct.pack("<II", start, sectors)
        mbr[462:478] = bytes([0, 0, 0, 0, 0x83, 0, 0, 0]) + struct.pack(
            "<II", start + sectors, 2048
        )
        mbr[510:512] = b"\x55\xaa"
        fh.write(mbr)
        fh.truncate((start + sectors + 2048) * 512)
    subprocess.run(
        ["mkfs.vfat", "--offset", str(start), "-n", "BOOTFS", str(path), str(sectors // 2)],
        check=True,
        capture_output=True,
    )
    offset = start * 512
    for name, data in files.items():
        _put(path, offset, name, data)
    return offset


def make_bare_fat(path: Path, files: dict[str, str]) -> None:
    subprocess.run(["mkfs.vfat", "-C", str(path), "16384"], check=True, capture_output=True)
    for name, data in files.items():
        _put(path, 0, name, data)


def test_checksum_parsing_and_verification(tmp_path: Path) -> None:
    f = tmp_path / "raspios.img.xz"
    f.write_bytes(b"image bytes")
    digest = hashlib.sha256(b"image bytes").hexdigest()
    listing = f"{'0' * 64}  other.img.xz\n{digest}  raspios.img.xz\n"
    assert img.expected_sha256(listing, "raspios.img.xz") == digest
    assert img.expected_sha256(digest.upper()) == digest
    assert img.verify_checksum(f, digest) == digest
    with pytest.raises(ProvisioningError, match="SHA-256 mismatch"):
        img.verify_checksum(f, "0" * 64)
    with pytest.raises(ProvisioningError, match="no SHA-256"):
        img.expected_sha256("nothing here")


def test_boot_partition_offset(tmp_path: Path) -> None:
    disk = tmp_path / "disk.img"
    assert make_disk_image(disk, {}) == 1024 * 1024
    assert img.boot_partition_offset(disk.read_bytes()[:512]) == 1024 * 1024
    fat = tmp_path / "boot.fat"
    make_bare_fat(fat, {})
    assert img.boot_partition_offset(fat.read_bytes()[:512]) == 0
    with pytest.raises(ProvisioningError, match="not a disk image"):
        img.boot_partition_offset(b"\0" * 512)


def _write_inputs(tmp_path: Path) -> tuple[Path, Path]:
    import json

    config = tmp_path / "site.toml"
    config.write_text(CONFIG)
    ticket = tmp_path / "enrol.json"
    ticket.write_text(json.dumps(TICKET))
    return config, ticket


def test_bookworm_image_via_cli_with_checksum(tmp_path: Path) -> None:
    raw = tmp_path / "raspios-bookworm.img"
    offset = make_disk_image(raw, {"cmdline.txt": CMDLINE, "config.txt": "arm_64bit=1\n"})
    xz = tmp_path / "raspios-bookworm.img.xz"
    xz.write_bytes(lzma.compress(raw.read_bytes(), preset=0))
    (tmp_path / "raspios-bookworm.img.xz.sha256").write_text(
        f"{hashlib.sha256(xz.read_bytes()).hexdigest()}  raspios-bookworm.img.xz\n"
    )
    config, ticket = _write_inputs(tmp_path)
    out = tmp_path / "prepared.img"
    argv = [
        "prepare-image",
        "--image", str(xz),
        "--sha256-file", str(tmp_path / "raspios-bookworm.img.xz.sha256"),
        "--output", str(out),
        "--config-file", str(config),
        "--enrolment-file", str(ticket),
    ]  # fmt: skip
    assert main(argv) == 0
    assert out.stat().st_mode & 0o777 == 0o600, "image holds a secret: owner-only"
    cmdline = _get(out, offset, "cmdline.txt")
    assert cmdline is not None and cmdline.count("systemd.run=/boot/firstrun.sh") == 1
    assert cmdline.startswith(CMDLINE.strip())
    assert "\n" not in cmdline.rstrip("\n"), "cmdline.txt must stay one line"
    firstrun = _get(out, offset, "firstrun.sh")
    assert firstrun is not None and img.HOOK_MARKER in firstrun
    assert '"$BOOT/outpost/firstboot.sh"' in firstrun
    assert _get(out, offset, "outpost/outpost.toml") == CONFIG
    assert '"token": "t0k3n-very-secret-0123456789"' in (
        _get(out, offset, "outpost/enrol.json") or ""
    )
    assert _get(out, offset, "config.txt") == "arm_64bit=1\n"  # untouched

    # Re-running on the prepared image changes nothing that matters (idempotent hook).
    assert main([*argv[:2], str(out), "--skip-checksum", *argv[7:]]) == 0
    assert _get(out, offset, "cmdline.txt") == cmdline
    assert _get(out, offset, "firstrun.sh") == firstrun

    # A corrupt download is refused before anything is written.
    bad = tmp_path / "bad.sha256"
    bad.write_text(f"{'1' * 64}  raspios-bookworm.img.xz\n")
    out2 = tmp_path / "prepared2.img"
    assert main([*argv[:3], "--sha256-file", str(bad), "--output", str(out2), *argv[7:]]) == 1
    assert not out2.exists()


def test_imager_firstrun_is_chained_not_replaced(tmp_path: Path) -> None:
    disk = tmp_path / "card.img"
    imager = "#!/bin/bash\n\nset +e\n/usr/lib/userconf-pi/userconf pi x\nrm -f /boot/firstrun.sh\n"
    offset = make_disk_image(
        disk,
        {
            "cmdline.txt": CMDLINE.strip() + " systemd.run=/boot/firstrun.sh\n",
            "firstrun.sh": imager,
        },
    )
    boot = img.ImageBoot.open(disk)
    result = img.prepare_boot(boot, CONFIG, None, "op-img-01")
    assert result.mode == "firstrun"
    firstrun = _get(disk, offset, "firstrun.sh") or ""
    lines = firstrun.splitlines()
    assert lines[0] == "#!/bin/bash" and lines[1] == img.HOOK_MARKER
    assert "/usr/lib/userconf-pi/userconf pi x" in firstrun  # Imager's work still happens
    assert (_get(disk, offset, "cmdline.txt") or "").count("systemd.run=") == 1
    assert _get(disk, offset, "outpost/enrol.json") is None


def test_cloud_init_image_keeps_existing_user_data(tmp_path: Path) -> None:
    fat = tmp_path / "trixie-boot.fat"
    original = "#cloud-config\nusers:\n  - name: installer\nruncmd:\n  - [touch, /tmp/x]\n"
    make_bare_fat(
        fat, {"cmdline.txt": CMDLINE, "user-data": original, "meta-data": "instance-id: rpi\n"}
    )
    _config, ticket = _write_inputs(tmp_path)
    stage = tmp_path / "stage"
    stage.mkdir()
    boot = img.ImageBoot.open(fat, staging_root=stage)
    for _ in range(2):  # second run replaces our part, does not add another
        result = img.prepare_boot(boot, CONFIG, ticket.read_text(), "op-img-01")
    assert result.mode == "cloud-init"
    assert list(stage.iterdir()) == [], "staged secrets must not be left behind"
    user_data = _get(fat, 0, "user-data") or ""
    msg = email.message_from_string(user_data)
    parts = [p for p in msg.walk() if not p.is_multipart()]
    assert [p.get_content_type() for p in parts] == ["text/cloud-config", "text/x-shellscript"]
    assert parts[0].get_payload(decode=True).decode() == original
    assert img.HOOK_MARKER in parts[1].get_payload(decode=True).decode()
    assert _get(fat, 0, "meta-data") == "instance-id: rpi\n"
    assert _get(fat, 0, "cmdline.txt") == CMDLINE  # cloud-init images need no cmdline hook


def test_mounted_card_gets_owner_only_secrets(tmp_path: Path) -> None:
    boot_dir = tmp_path / "bootfs"
    boot_dir.mkdir()
    (boot_dir / "cmdline.txt").write_text(CMDLINE)
    config, ticket = _write_inputs(tmp_path)
    argv = ["prepare-image", "--boot-dir", str(boot_dir), "--config-file", str(config)]
    assert main([*argv, "--enrolment-file", str(ticket)]) == 0
    assert (boot_dir / "outpost/enrol.json").stat().st_mode & 0o777 == 0o600
    assert (boot_dir / "outpost/outpost.toml").stat().st_mode & 0o777 == 0o600
    assert (boot_dir / "firstrun.sh").exists()


def test_invalid_config_is_refused_before_writing(tmp_path: Path) -> None:
    fat = tmp_path / "boot.fat"
    make_bare_fat(fat, {"cmdline.txt": CMDLINE})
    config = tmp_path / "bad.toml"
    config.write_text('[mqtt]\nurls = ["http://nope"]\n')
    argv = ["prepare-image", "--image", str(fat), "--skip-checksum", "--config-file", str(config)]
    assert main(argv) == 1
    assert _get(fat, 0, "outpost/outpost.toml") is None


@pytest.mark.skipif(os.geteuid() != 0, reason="install -o root needs root")
def test_first_boot_hook_moves_secrets_off_the_boot_partition(tmp_path: Path) -> None:
    """Run the generated firstboot.sh against a fake root, as the box would on first boot."""
    boot_dir = tmp_path / "boot"
    boot_dir.mkdir()
    (boot_dir / "cmdline.txt").write_text(CMDLINE)
    _config, ticket = _write_inputs(tmp_path)
    img.prepare_boot(img.MountedBoot(boot_dir), CONFIG, ticket.read_text(), "op-img-01")
    root = tmp_path / "root"
    root.mkdir()
    env = {
        **os.environ,
        "OUTPOST_ROOT": str(root),
        "OUTPOST_BOOT": str(boot_dir),
        "OUTPOST_SYSTEMCTL": "true",
    }
    proc = subprocess.run(
        ["sh", str(boot_dir / "outpost/firstboot.sh")], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    etc = root / "etc/outpost"
    enrol = (etc / "enrol.json").stat()
    assert (enrol.st_mode & 0o777, enrol.st_uid) == (0o600, 0)
    assert (etc / "outpost.toml").stat().st_mode & 0o777 == 0o640
    assert (etc / "outpost.toml").read_text() == CONFIG
    assert etc.stat().st_mode & 0o777 == 0o750
    assert not (boot_dir / "outpost").exists(), "nothing may stay on the FAT partition"


@pytest.mark.skipif(os.geteuid() != 0, reason="install -o root needs root")
def test_first_boot_without_credential_leaves_a_csr_for_the_offline_pki(tmp_path: Path) -> None:
    import sys

    from cryptography import x509

    boot_dir = tmp_path / "boot"
    boot_dir.mkdir()
    (boot_dir / "cmdline.txt").write_text(CMDLINE)
    img.prepare_boot(img.MountedBoot(boot_dir), CONFIG, None, "op-img-01")
    root = tmp_path / "root"
    root.mkdir()
    repo = Path(__file__).resolve().parents[2]
    stub = tmp_path / "outpost-provision"
    stub.write_text(f'#!/bin/sh\ncd "{repo}" && exec "{sys.executable}" -m provisioning "$@"\n')
    stub.chmod(0o755)
    env = {
        **os.environ,
        "OUTPOST_ROOT": str(root),
        "OUTPOST_BOOT": str(boot_dir),
        "OUTPOST_SYSTEMCTL": "true",
        "OUTPOST_PROVISION": str(stub),
    }
    proc = subprocess.run(
        ["sh", str(boot_dir / "outpost/firstboot.sh")], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    key = root / "etc/outpost/pki/device.key"
    assert key.stat().st_mode & 0o777 == 0o600
    csr = x509.load_pem_x509_csr((boot_dir / "outpost-op-img-01.csr").read_bytes())
    assert csr.is_signature_valid
    assert b"PRIVATE" not in (boot_dir / "outpost-op-img-01.csr").read_bytes()
    assert not (boot_dir / "outpost").exists()
