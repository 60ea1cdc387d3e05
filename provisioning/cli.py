"""``outpost-provision``: the installer's one tool (identity, enrolment, config, images).

Every failure is one plain sentence on stderr and exit code 1; usage errors exit 2.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from agent.config import DEFAULT_CONFIG_PATH
from agent.errors import ProvisioningError
from provisioning import image as img
from provisioning.bundle import CertBundle, install_bundle
from provisioning.config_writer import (
    changes_from_flags,
    prompt_changes,
    read_config,
    validate_text,
    write_config,
)
from provisioning.enrol import DEFAULT_ENROLMENT_FILE, EnrolmentTicket, enrol_online
from provisioning.identity import DEFAULT_PKI_DIR, DeviceIdentity, IdentityPaths, write_public


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="outpost-provision",
        description="Give an Outpost box its identity, its certificate and its configuration.",
    )
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    s = sub.add_parser("identity", help="create (or show) the device id, private key and CSR")
    s.add_argument("--device-id", help="default: op-<Pi serial number>")
    s.add_argument("--pki-dir", type=Path, default=DEFAULT_PKI_DIR)
    s.add_argument("--regenerate", action="store_true", help="replace an existing key")
    s.add_argument("--export-csr", type=Path, help="also copy the CSR here (for offline PKI)")

    s = sub.add_parser("enrol", help="online: trade the one-time credential for a certificate")
    s.add_argument("--enrolment-file", type=Path, default=DEFAULT_ENROLMENT_FILE)
    s.add_argument("--pki-dir", type=Path, default=DEFAULT_PKI_DIR)
    s.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH)
    s.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the signer")
    s.add_argument("--restart-agent", action="store_true", help="restart outpost.service after")

    s = sub.add_parser("import-bundle", help="offline: install a certificate bundle from the PKI")
    s.add_argument("bundle", type=Path)
    s.add_argument("--trusted-ca", type=Path, help="the site's root CA to pin (recommended)")
    s.add_argument("--pki-dir", type=Path, default=DEFAULT_PKI_DIR)
    s.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH)
    s.add_argument("--dry-run", action="store_true", help="check and show the config diff only")

    s = sub.add_parser("config", help="write a validated outpost.toml from flags or prompts")
    s.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH)
    s.add_argument("--device-id")
    s.add_argument("--site", help="region/city/county")
    s.add_argument("--broker-url", action="append", default=[], help="repeat for fail-over")
    s.add_argument("--button", action="append", default=[], metavar="K=V,...")
    s.add_argument("--reader", action="append", default=[], metavar="K=V,...")
    s.add_argument("--camera", action="append", default=[], metavar="K=V,...")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    s.add_argument("--add", nargs=2, action="append", default=[], metavar=("LIST", "K=V,..."))
    s.add_argument("--interactive", "-i", action="store_true", help="ask for the basics")
    s.add_argument("--dry-run", action="store_true", help="show the diff, write nothing")

    s = sub.add_parser("prepare-image", help="make an image or flashed card provision itself")
    target = s.add_mutually_exclusive_group(required=True)
    target.add_argument("--image", type=Path, help="Raspberry Pi OS .img or .img.xz")
    target.add_argument("--boot-dir", type=Path, help="mounted boot partition of a card")
    s.add_argument("--sha256", help="expected SHA-256 of --image")
    s.add_argument("--sha256-file", type=Path, help="the image's published .sha256 file")
    s.add_argument("--output", type=Path, help="write the prepared image here")
    s.add_argument("--config-file", type=Path, required=True, help="outpost.toml for the box")
    s.add_argument(
        "--enrolment-file",
        type=Path,
        help="one-time enrol.json (online); without it the first boot leaves a CSR on the card",
    )
    s.add_argument("--first-boot", choices=["auto", "cloud-init", "firstrun"], default="auto")
    s.add_argument(
        "--skip-checksum", action="store_true", help="only for images you built yourself"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(_COMMANDS[args.cmd](args))
    except ProvisioningError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; nothing more was written", file=sys.stderr)
        return 130


def _identity(args: argparse.Namespace) -> int:
    ident = DeviceIdentity.ensure(
        IdentityPaths(args.pki_dir), args.device_id, regenerate=args.regenerate
    )
    print(f"device id: {ident.device_id}")
    print(f"private key: {ident.paths.key} (0600, stays on this box)")
    print(f"CSR: {ident.paths.csr}")
    if args.export_csr:
        write_public(args.export_csr, ident.csr_pem)
        print(f"CSR copied to {args.export_csr}: take it to the PKI, bring back a bundle")
    return 0


def _enrol(args: argparse.Namespace) -> int:
    ticket = EnrolmentTicket.load(args.enrolment_file)
    installed = enrol_online(
        ticket,
        IdentityPaths(args.pki_dir),
        args.config,
        timeout_s=args.timeout,
        enrolment_file=args.enrolment_file,
    )
    _report_cert(installed.device_id, installed.cert.not_valid_after_utc.date().isoformat())
    print(f"config {args.config} now uses the device certificate; enrolment credential spent")
    if args.restart_agent:
        _restart_agent()
    return 0


def _import_bundle(args: argparse.Namespace) -> int:
    try:
        raw = args.bundle.read_bytes()
    except OSError as exc:
        raise ProvisioningError(f"cannot read {args.bundle}: {exc.strerror}") from None
    trusted = args.trusted_ca.read_bytes() if args.trusted_ca else None
    installed = install_bundle(
        CertBundle.parse(raw, str(args.bundle)),
        IdentityPaths(args.pki_dir),
        args.config,
        trusted_ca_pem=trusted,
        dry_run=args.dry_run,
    )
    if args.dry_run:
        print("bundle matches this device's key and CA; would change the config:")
        print(installed.config.diff or "(no change)", end="")
        return 0
    _report_cert(installed.device_id, installed.cert.not_valid_after_utc.date().isoformat())
    return 0


def _report_cert(device_id: str, expires: str) -> None:
    print(f"device {device_id}: certificate installed, valid until {expires}")


def _config(args: argparse.Namespace) -> int:
    changes = changes_from_flags(
        device_id=args.device_id,
        site=args.site,
        broker_urls=args.broker_url,
        assignments=args.set,
        buttons=args.button,
        readers=args.reader,
        cameras=args.camera,
        additions=[(k, v) for k, v in args.add],
    )
    if args.interactive:
        text, _ = read_config(args.config)
        current = validate_text(text) if text else None
        asked = prompt_changes(current)
        changes.assignments.extend(asked.assignments)
        changes.entries.extend(asked.entries)
    result = write_config(changes, args.config, dry_run=args.dry_run)
    if args.dry_run:
        print(result.diff or f"{args.config}: no change", end="" if result.diff else "\n")
    elif result.written:
        print(f"{args.config} written and valid")
    else:
        print(f"{args.config} already up to date")
    return 0


def _prepare_image(args: argparse.Namespace) -> int:
    config_text = args.config_file.read_text()
    settings = validate_text(config_text)
    enrol_json = None
    if args.enrolment_file:
        enrol_json = EnrolmentTicket.load(args.enrolment_file).to_json()
    boot: img.BootPartition
    if args.image:
        if args.sha256 or args.sha256_file:
            expected = args.sha256 or img.expected_sha256(
                args.sha256_file.read_text(), args.image.name
            )
            img.verify_checksum(args.image, img.expected_sha256(expected))
            print(f"{args.image.name}: SHA-256 verified")
        elif not args.skip_checksum:
            raise ProvisioningError(
                "give --sha256 or --sha256-file for the image (or --skip-checksum for your own)"
            )
        target = img.materialise_image(args.image, args.output)
        boot = img.ImageBoot.open(target)
        where = str(target)
    else:
        boot = img.MountedBoot(args.boot_dir)
        where = str(args.boot_dir)
    result = img.prepare_boot(boot, config_text, enrol_json, settings.device.id, args.first_boot)
    print(f"{where}: first boot via {result.mode}; wrote {', '.join(result.written)}")
    if args.image:
        print(f"{where} is mode 0600: it holds an enrolment secret until the box has booted")
    return 0


def _restart_agent() -> None:
    if shutil.which("systemctl") is None:
        return
    # --no-block: on first boot outpost.service's start job waits for this unit to finish.
    subprocess.run(
        ["systemctl", "--no-block", "try-restart", "outpost.service"], check=False, timeout=60
    )


_COMMANDS = {
    "identity": _identity,
    "enrol": _enrol,
    "import-bundle": _import_bundle,
    "config": _config,
    "prepare-image": _prepare_image,
}


if __name__ == "__main__":
    sys.exit(main())
