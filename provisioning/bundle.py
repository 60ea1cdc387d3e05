"""The certificate bundle: what the central PKI returns for a CSR, online or on a USB stick.

One JSON document (``outpost-bundle/1``): the device certificate, the CA chain and the
broker settings the device switches to. ``install_bundle`` checks it against the local key
before writing anything, then points the config at it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.config import DEFAULT_CONFIG_PATH
from agent.errors import ProvisioningError
from provisioning.config_writer import ConfigChanges, ConfigResult, write_config
from provisioning.identity import (
    DeviceIdentity,
    IdentityPaths,
    load_certs,
    verify_device_cert,
    write_public,
)


class BrokerSettings(BaseModel):
    """Where an enrolled device connects, with its certificate (no password)."""

    model_config = ConfigDict(extra="forbid")

    urls: list[str] = Field(min_length=1)
    check_hostname: bool = True
    protocol: Literal["5", "3.1.1"] | None = None


class CertBundle(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["outpost-bundle/1"] = "outpost-bundle/1"
    device_id: str
    cert_pem: str
    ca_pem: str = Field(description="CA chain, leaf-most first, ending with the root")
    mqtt: BrokerSettings
    site: str | None = None

    @classmethod
    def parse(cls, raw: bytes | str, source: str) -> CertBundle:
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "<root>"
            raise ProvisioningError(f"{source}: {where}: {first.get('msg')}") from None

    def to_json(self) -> str:
        return json.dumps(self.model_dump(exclude_none=True), indent=2) + "\n"


@dataclass(frozen=True)
class InstalledBundle:
    device_id: str
    cert: x509.Certificate
    config: ConfigResult


def check_bundle(bundle: CertBundle, identity: DeviceIdentity) -> x509.Certificate:
    """The bundle's certificate if it belongs to this device's key and chains to its CA."""
    if bundle.device_id != identity.device_id:
        raise ProvisioningError(
            f"bundle is for device {bundle.device_id!r}, this device is {identity.device_id!r}"
        )
    cert = load_certs(bundle.cert_pem.encode(), "bundle cert_pem")[0]
    chain = load_certs(bundle.ca_pem.encode(), "bundle ca_pem")
    verify_device_cert(cert, identity.key, chain, identity.device_id)
    return cert


def install_bundle(
    bundle: CertBundle,
    paths: IdentityPaths,
    config_path: Path = DEFAULT_CONFIG_PATH,
    trusted_ca_pem: bytes | None = None,
    dry_run: bool = False,
) -> InstalledBundle:
    """Verify ``bundle`` against the key in ``paths``, write cert + CA, switch the config.

    ``trusted_ca_pem`` pins the root the installer expects (from the site's paperwork);
    without it the bundle's own root is trusted. The enrolment username/password are
    removed from the config: from now on the device authenticates with its certificate.
    """
    if not paths.key.exists():
        raise ProvisioningError(f"no device key in {paths.pki_dir}; run `identity` first")
    identity = DeviceIdentity.ensure(paths)
    key = identity.key
    cert = check_bundle(bundle, identity)
    if trusted_ca_pem is not None:
        pinned = load_certs(trusted_ca_pem, "trusted CA")
        verify_device_cert(cert, key, pinned, identity.device_id)
    changes = broker_changes(bundle, paths)
    # Validate the new config before touching anything, then write the certificate before
    # the config that points at it: an interruption never leaves a config naming a
    # certificate that is not there.
    result = write_config(changes, config_path, dry_run=True)
    if not dry_run:
        write_public(paths.cert, bundle.cert_pem.encode())
        write_public(paths.ca, bundle.ca_pem.encode())
        result = write_config(changes, config_path)
    return InstalledBundle(identity.device_id, cert, result)


def broker_changes(bundle: CertBundle, paths: IdentityPaths) -> ConfigChanges:
    changes = ConfigChanges()
    changes.set("device.id", bundle.device_id)
    if bundle.site:
        changes.set("device.site", bundle.site)
    changes.set("mqtt.urls", list(bundle.mqtt.urls))
    changes.set("mqtt.client_id", bundle.device_id)
    changes.set("mqtt.username", None)
    changes.set("mqtt.password", None)
    if bundle.mqtt.protocol:
        changes.set("mqtt.protocol", bundle.mqtt.protocol)
    tls: dict[str, Any] = {
        "ca_file": str(paths.ca),
        "cert_file": str(paths.cert),
        "key_file": str(paths.key),
        "check_hostname": bundle.mqtt.check_hostname,
    }
    changes.set("mqtt.tls", tls)
    return changes
