"""Contact ID payload blocks and the DC-05 checksum."""

from __future__ import annotations

import pytest

from drivers.gpio import contact_id as cid


def test_checksum_of_the_reference_message() -> None:
    # 1234 18 1 120 01 015: digit values sum to 60, so the check digit is 0, sent as F.
    assert cid.checksum_digit("123418112001015") == "F"
    assert cid.message("1234", cid.ContactId(120, cid.NEW, 1, 15)) == "123418112001015F"


@pytest.mark.parametrize("code", [120, 121, 137, 144, 301, 380, 406])
@pytest.mark.parametrize("qualifier", [cid.NEW, cid.RESTORE])
def test_every_message_sums_to_a_multiple_of_15(code: int, qualifier: int) -> None:
    msg = cid.message("0042", cid.ContactId(code, qualifier, 1, 7))
    assert len(msg) == 16
    assert sum(10 if ch == "0" else int(ch, 16) for ch in msg) % 15 == 0


def test_payload_block() -> None:
    block = cid.ContactId(137, cid.RESTORE, 1, 0).to_dict()
    assert block == {
        "code": 137,
        "qualifier": 3,
        "event": "R",
        "group": 1,
        "zone": 0,
        "adm_cid": "3137 01 000",
    }
    with pytest.raises(ValueError):
        cid.ContactId(120, qualifier=2)
