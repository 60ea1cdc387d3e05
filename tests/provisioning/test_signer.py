"""Reference signer pieces that the end-to-end test does not isolate: tokens and ACL files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.errors import ProvisioningError
from provisioning.signer import SIGNER_USER, MosquittoAuth, TokenStore


def test_token_is_single_use_and_expires(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    token = store.issue("op-s-01", "a/b/c")
    assert (tmp_path / "tokens.json").stat().st_mode & 0o777 == 0o600
    assert token not in (tmp_path / "tokens.json").read_text(), "only a hash is stored"
    with pytest.raises(ProvisioningError, match="wrong enrolment token"):
        store.claim("op-s-01", "not-the-token")
    rec = store.claim("op-s-01", token)
    assert rec["site"] == "a/b/c"
    with pytest.raises(ProvisioningError, match="already used"):
        store.claim("op-s-01", token)
    with pytest.raises(ProvisioningError, match="already enrolled"):
        store.issue("op-s-01", "a/b/c")
    store.issue("op-s-02", "a/b/c", ttl_s=-1)
    with pytest.raises(ProvisioningError, match="expired"):
        store.claim("op-s-02")
    with pytest.raises(ProvisioningError, match="no enrolment pending"):
        store.claim("op-unknown")


def test_acl_files_follow_the_token_store(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    store.issue("op-pending", "north/x/y")
    store.issue("op-done", "south/x/y")
    store.claim("op-done")
    auth = MosquittoAuth(tmp_path / "p", tmp_path / "enrol.acl", tmp_path / "device.acl")
    auth.render(store)
    enrol = (tmp_path / "enrol.acl").read_text()
    device = (tmp_path / "device.acl").read_text()
    assert "user op-pending\ntopic write outpost/provision/op-pending/csr\n" in enrol
    assert "topic read outpost/provision/op-pending/cert" in enrol
    assert "op-done" not in enrol
    assert "user op-done\ntopic readwrite outpost/south/x/y/op-done/#" in device
    assert f"user {SIGNER_USER}\ntopic read outpost/provision/+/csr" in device
    assert "op-pending" not in device
    assert json.loads((tmp_path / "tokens.json").read_text())["op-done"]["enrolled_at"]
