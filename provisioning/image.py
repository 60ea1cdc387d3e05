"""Preparing a Raspberry Pi OS image (or a flashed card's boot partition) to provision itself.

Owns: checksum verification, finding the FAT boot partition inside an image, writing the
config + enrolment material + a first-boot hook (cloud-init user-data on current images,
``firstrun.sh`` + ``cmdline.txt systemd.run=`` on Bookworm). Images are edited with mtools,
so no loop mount and no root are needed.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.parser import Parser
from pathlib import Path, PurePosixPath
from typing import IO, Literal, Protocol

from agent.errors import ProvisioningError
from provisioning.identity import check_device_id

OUTPOST_DIR = "outpost"
SECRET_FILES = frozenset({"outpost/enrol.json"})
HOOK_MARKER = "# outpost-first-boot"
FirstBootMode = Literal["auto", "cloud-init", "firstrun"]
_FAT_TYPES = {0x01, 0x04, 0x06, 0x0B, 0x0C, 0x0E}
_SECTOR = 512


# Checksums -----------------------------------------------------------------------------------


def sha256_file(path: Path, chunk: int = 4 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def expected_sha256(text: str, filename: str | None = None) -> str:
    """The hash from a ``.sha256`` file (``HEX  name`` lines) or a bare hex string."""
    candidates: list[tuple[str, str]] = []
    for line in text.splitlines():
        m = re.match(r"^\s*([0-9a-fA-F]{64})(?:\s+\*?(.+?))?\s*$", line)
        if m:
            candidates.append((m.group(1).lower(), (m.group(2) or "").strip()))
    if not candidates:
        raise ProvisioningError("no SHA-256 hash found in the checksum text")
    if filename is not None:
        for digest, name in candidates:
            if name and PurePosixPath(name).name == filename:
                return digest
    if len(candidates) == 1:
        return candidates[0][0]
    raise ProvisioningError(f"checksum file lists several images, none named {filename!r}")


def verify_checksum(image: Path, expected: str) -> str:
    actual = sha256_file(image)
    if actual != expected.lower():
        raise ProvisioningError(
            f"{image.name}: SHA-256 mismatch (expected {expected.lower()}, got {actual}); "
            "the download is corrupt or not the image you meant"
        )
    return actual


# Locating the boot partition -----------------------------------------------------------------


def _is_fat_boot_sector(sector: bytes) -> bool:
    if len(sector) < _SECTOR or sector[510:512] != b"\x55\xaa":
        return False
    return sector[54:57] == b"FAT" or sector[82:87] == b"FAT32"


def boot_partition_offset(head: bytes) -> int:
    """Byte offset of the FAT boot partition in an image whose first sector is ``head``.

    0 for a bare FAT filesystem; the first FAT partition of an MBR partition table
    otherwise (Raspberry Pi OS images are MBR with the boot partition first).
    """
    if _is_fat_boot_sector(head):
        return 0
    if len(head) < _SECTOR or head[510:512] != b"\x55\xaa":
        raise ProvisioningError("not a disk image: no MBR or FAT boot sector")
    for i in range(4):
        entry = head[446 + 16 * i : 446 + 16 * (i + 1)]
        ptype = entry[4]
        start_lba, sectors = struct.unpack("<II", entry[8:16])
        if ptype in _FAT_TYPES and sectors:
            return start_lba * _SECTOR
    raise ProvisioningError("no FAT (boot) partition in the image's partition table")


# Boot partition access -----------------------------------------------------------------------


class BootPartition(Protocol):
    """The FAT boot partition, as a mounted directory or inside an image file."""

    def read(self, name: str) -> bytes | None: ...

    def write(self, name: str, data: bytes, secret: bool = False) -> None: ...

    def delete(self, name: str) -> None: ...

    def exists(self, name: str) -> bool: ...


@dataclass
class MountedBoot:
    """An already-flashed card's boot partition mounted at ``root``."""

    root: Path

    def read(self, name: str) -> bytes | None:
        try:
            return (self.root / name).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, name: str, data: bytes, secret: bool = False) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        if secret and (path.stat().st_mode & 0o077):
            # vfat ignores chmod; its modes come from the mount's fmask.
            raise ProvisioningError(
                f"{path} is readable by other users on this machine: remount the card with "
                "fmask=0077 (or prepare the image file instead) and run again"
            )

    def delete(self, name: str) -> None:
        (self.root / name).unlink(missing_ok=True)

    def exists(self, name: str) -> bool:
        return (self.root / name).exists()


@dataclass
class ImageBoot:
    """The boot partition inside an image file, edited with mtools (no mount, no root)."""

    image: Path
    offset: int
    staging_root: Path | None = None
    _dirs: set[str] = field(default_factory=set)

    @classmethod
    def open(cls, image: Path, staging_root: Path | None = None) -> ImageBoot:
        for tool in ("mcopy", "mdir", "mmd", "mdel"):
            if shutil.which(tool) is None:
                raise ProvisioningError(f"{tool} not found: install mtools")
        with image.open("rb") as fh:
            head = fh.read(_SECTOR)
        return cls(image, boot_partition_offset(head), staging_root)

    @property
    def _drive(self) -> str:
        return f"{self.image}@@{self.offset}"

    def _mtools(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
        return subprocess.run(
            [args[0], "-i", self._drive, *args[1:]],
            capture_output=True,
            env=env,
            input=stdin,
            timeout=60,
        )

    def read(self, name: str) -> bytes | None:
        proc = self._mtools("mcopy", "-n", f"::/{name}", "-")
        return proc.stdout if proc.returncode == 0 else None

    def exists(self, name: str) -> bool:
        return self._mtools("mdir", "-b", f"::/{name}").returncode == 0

    def _mkdirs(self, name: str) -> None:
        parent = PurePosixPath(name).parent
        for part in [*reversed([*parent.parents][:-1]), parent]:
            p = str(part)
            if p in (".", "") or p in self._dirs:
                continue
            if not self.exists(p):
                proc = self._mtools("mmd", f"::/{p}")
                if proc.returncode != 0:
                    raise ProvisioningError(f"cannot create {p} in the image: {_err(proc)}")
            self._dirs.add(p)

    def write(self, name: str, data: bytes, secret: bool = False) -> None:
        self._mkdirs(name)
        # The staged copy lives in a 0700 directory, 0600, and is gone when we return.
        with tempfile.TemporaryDirectory(prefix="outpost-stage-", dir=self.staging_root) as tmp:
            local = Path(tmp) / PurePosixPath(name).name
            fd = os.open(local, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            proc = self._mtools("mcopy", "-o", "-n", str(local), f"::/{name}")
        if proc.returncode != 0:
            raise ProvisioningError(f"cannot write {name} into the image: {_err(proc)}")

    def delete(self, name: str) -> None:
        if self.exists(name):
            self._mtools("mdel", f"::/{name}")


def _err(proc: subprocess.CompletedProcess[bytes]) -> str:
    return (proc.stderr or proc.stdout).decode(errors="replace").strip()


# First-boot material -------------------------------------------------------------------------


FIRSTBOOT_SH = r"""#!/bin/sh
# outpost-first-boot: written by `outpost-provision prepare-image`. Runs once, as root.
# Moves the Outpost material off the (world-readable) FAT boot partition into /etc/outpost
# with tight modes, starts enrolment, and deletes the copies from the boot partition.
set -eu
ROOT=${OUTPOST_ROOT:-}
BOOT=${OUTPOST_BOOT:-}
SYSTEMCTL=${OUTPOST_SYSTEMCTL:-systemctl}
DEVICE_ID=@DEVICE_ID@
if [ -z "$BOOT" ]; then
    for d in /boot/firmware /boot; do
        if [ -d "$d/outpost" ]; then BOOT=$d; break; fi
    done
fi
if [ -z "$BOOT" ] || [ ! -d "$BOOT/outpost" ]; then
    echo "outpost: no outpost/ on the boot partition"
    exit 0
fi
SRC=$BOOT/outpost
ETC=$ROOT/etc/outpost
umask 077
GROUP=root
if getent group outpost >/dev/null 2>&1; then GROUP=outpost; fi
install -d -m 0750 -o root -g "$GROUP" "$ETC" "$ETC/pki"
if [ -f "$SRC/outpost.toml" ]; then
    install -m 0640 -o root -g "$GROUP" "$SRC/outpost.toml" "$ETC/outpost.toml"
fi
if [ -f "$SRC/enrol.json" ]; then
    install -m 0600 -o root -g root "$SRC/enrol.json" "$ETC/enrol.json"
fi
# Secrets must not stay on the FAT partition, which any user (and any card reader) can read.
for f in enrol.json outpost.toml; do
    if [ -f "$SRC/$f" ]; then
        if command -v shred >/dev/null 2>&1; then shred -u "$SRC/$f"; else rm -f "$SRC/$f"; fi
    fi
done
rm -f "$SRC/firstboot.sh"
rmdir "$SRC" 2>/dev/null || true
if [ ! -f "$ETC/enrol.json" ]; then
    # Offline (air-gapped) box: make the identity now and leave the CSR (public) on the
    # boot partition, where the installer collects it for the PKI.
    PROVISION=${OUTPOST_PROVISION:-/opt/outpost/venv/bin/outpost-provision}
    if [ -x "$PROVISION" ] || command -v "$PROVISION" >/dev/null 2>&1; then
        "$PROVISION" identity --device-id "$DEVICE_ID" --pki-dir "$ETC/pki" \
            --export-csr "$BOOT/outpost-$DEVICE_ID.csr"
    else
        echo "outpost: $PROVISION not found; run 'outpost-provision identity' by hand"
    fi
fi
$SYSTEMCTL enable outpost-enrol.service outpost.service || echo "outpost: units not installed yet"
echo "outpost: first-boot material installed in $ETC"
"""

FIRSTRUN_SH = """#!/bin/bash
{marker}
# Bookworm first-boot runner (kernel command line systemd.run=), removes itself when done.
set +e
BOOT=/boot/firmware
[ -f "$BOOT/cmdline.txt" ] || BOOT=/boot
sh "$BOOT/outpost/firstboot.sh"
rm -f "$BOOT/firstrun.sh"
sed -i 's| systemd.run.*||g' "$BOOT/cmdline.txt"
exit 0
"""

CMDLINE_ARGS = (
    "systemd.run=/boot/firstrun.sh systemd.run_success_action=reboot "
    "systemd.unit=kernel-command-line.target"
)
HOOK_LINE = 'sh "$( [ -f /boot/firmware/cmdline.txt ] && echo /boot/firmware || echo /boot )/outpost/firstboot.sh"'  # noqa: E501


def cloud_init_user_data(existing: str | None) -> str:
    """User-data that keeps any existing cloud-config and adds our first-boot script part.

    A MIME multipart lets cloud-init run the installer's own cloud-config (users, Wi-Fi,
    SSH keys from Imager) unchanged, plus a ``text/x-shellscript`` part that runs the hook
    once per instance. Re-running replaces our part instead of adding another.
    """
    parts: list[tuple[str, str]] = []
    if existing and existing.lstrip().startswith("Content-Type: multipart"):
        msg = Parser().parsestr(existing)
        for part in msg.walk():
            if part.is_multipart():
                continue
            payload = part.get_payload(decode=True)
            text = payload.decode() if isinstance(payload, bytes) else str(payload)
            if HOOK_MARKER in text:
                continue
            parts.append((part.get_content_subtype(), text))
    elif existing and existing.strip():
        subtype = (
            "cloud-config" if existing.lstrip().startswith("#cloud-config") else "x-shellscript"
        )
        parts.append((subtype, existing))
    hook = f"#!/bin/sh\n{HOOK_MARKER}\n{HOOK_LINE}\n"
    parts.append(("x-shellscript", hook))
    outer = MIMEMultipart(boundary="==OUTPOST-USER-DATA==")
    for subtype, text in parts:
        outer.attach(MIMEText(text, subtype, "utf-8"))
    return outer.as_string() + "\n"


def cmdline_with_firstrun(cmdline: str) -> str:
    line = " ".join(cmdline.split())
    if "systemd.run=" in line:
        return line + "\n"
    return f"{line} {CMDLINE_ARGS}\n"


def firstrun_with_hook(existing: str | None) -> str:
    """Our ``firstrun.sh``, or Imager's with one line added to run the hook first."""
    if existing is None:
        return FIRSTRUN_SH.format(marker=HOOK_MARKER)
    if HOOK_MARKER in existing:
        return existing
    lines = existing.splitlines()
    insert_at = 1 if lines and lines[0].startswith("#!") else 0
    lines[insert_at:insert_at] = [HOOK_MARKER, HOOK_LINE]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class PrepareResult:
    mode: Literal["cloud-init", "firstrun"]
    written: list[str]


def detect_mode(boot: BootPartition) -> Literal["cloud-init", "firstrun"]:
    """cloud-init when the image ships NoCloud seed files (Trixie and later), else firstrun."""
    if boot.exists("user-data") or boot.exists("meta-data") or boot.exists("network-config"):
        return "cloud-init"
    if boot.exists("cmdline.txt"):
        return "firstrun"
    raise ProvisioningError(
        "this does not look like a Raspberry Pi OS boot partition (no cmdline.txt, no user-data)"
    )


def prepare_boot(
    boot: BootPartition,
    config_text: str,
    enrolment_json: str | None,
    device_id: str,
    mode: FirstBootMode = "auto",
) -> PrepareResult:
    """Write the Outpost material and the first-boot hook onto ``boot``.

    Without ``enrolment_json`` (an air-gapped post) the first boot creates the identity and
    leaves ``outpost-<device_id>.csr`` on the boot partition for the offline PKI.
    """
    check_device_id(device_id)
    chosen = detect_mode(boot) if mode == "auto" else mode
    written: list[str] = []

    def put(name: str, data: str, secret: bool = False) -> None:
        boot.write(name, data.encode(), secret=secret)
        written.append(name)

    put(f"{OUTPOST_DIR}/outpost.toml", config_text, secret=True)
    if enrolment_json is not None:
        put(f"{OUTPOST_DIR}/enrol.json", enrolment_json, secret=True)
    put(f"{OUTPOST_DIR}/firstboot.sh", FIRSTBOOT_SH.replace("@DEVICE_ID@", device_id))
    if chosen == "cloud-init":
        existing = boot.read("user-data")
        put("user-data", cloud_init_user_data(existing.decode() if existing else None))
        if not boot.exists("meta-data"):
            put("meta-data", f"instance-id: outpost-{device_id}\n")
    else:
        cmdline = boot.read("cmdline.txt")
        if cmdline is None:
            raise ProvisioningError("cmdline.txt missing on the boot partition")
        existing = boot.read("firstrun.sh")
        put("firstrun.sh", firstrun_with_hook(existing.decode() if existing else None))
        put("cmdline.txt", cmdline_with_firstrun(cmdline.decode()))
    return PrepareResult(chosen, written)


# Whole-image entry point ---------------------------------------------------------------------


def materialise_image(source: Path, output: Path | None) -> Path:
    """The raw image to edit: ``source`` itself, a copy, or ``.xz`` decompressed to ``output``.

    The result is made 0600, since it is about to hold an enrolment secret.
    """
    if source.suffix == ".xz":
        if output is None:
            raise ProvisioningError("a compressed image needs --output for the prepared .img")
        with lzma.open(source, "rb") as src, _private_open(output) as dst:
            shutil.copyfileobj(src, dst, 4 << 20)
        target = output
    elif output is not None and output != source:
        with source.open("rb") as src, _private_open(output) as dst:
            shutil.copyfileobj(src, dst, 4 << 20)
        target = output
    else:
        target = source
    target.chmod(0o600)
    return target


def _private_open(path: Path) -> IO[bytes]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return os.fdopen(fd, "wb")
