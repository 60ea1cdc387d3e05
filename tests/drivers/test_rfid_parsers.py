"""Pure parsers of every reader family: the reference's worked examples, split and noisy
streams, bad checksums, and property tests on arbitrary bytes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.rfid.hid import KEY_ENTER, KeystrokeDecoder, decode_line
from drivers.rfid.id12 import Id12Parser
from drivers.rfid.pn532 import (
    ACK,
    NACK,
    Ack,
    Nack,
    Pn532FrameParser,
    Response,
    command_frame,
    encode_frame,
    in_list_passive_target,
    no_target_response,
    parse_passive_target,
    rf_retries,
    sam_configuration,
    target_response,
)
from drivers.rfid.rdm6300 import Rdm6300Parser, encode_ascii_frame, xor_checksum
from drivers.rfid.tags import Tag, Tech, tag_keys
from drivers.rfid.wiegand import WiegandAssembler, decode_wiegand, encode_wiegand

RDM_EXAMPLE = bytes.fromhex("02 36 32 45 33 30 38 36 43 45 44 30 38 03")
ID12_EXAMPLE = bytes.fromhex("02 30 43 30 30 30 36 32 31 41 35 38 45 0D 0A 03")


# --- RDM6300 / ID-12 ------------------------------------------------------------------------


def test_rdm6300_reference_example_and_printed_forms() -> None:
    p = Rdm6300Parser()
    [tag] = p.feed(RDM_EXAMPLE)
    assert tag == Tag(Tech.EM4100, "62E3086CED")
    assert tag.forms() == {
        "hex": "62E3086CED",
        "dec32": "3808980205",
        "w26": "008,27885",
        "dec24": "00552173",
    }
    assert tag.key == "em4100:62E3086CED"
    assert p.stats.frames == 1 and p.stats.bad_checksum == 0


def test_id12_reference_example_checksum_is_8e() -> None:
    assert xor_checksum(bytes.fromhex("0C000621A5")) == 0x8E
    p = Id12Parser()
    assert p.feed(ID12_EXAMPLE) == [Tag(Tech.EM4100, "0C000621A5")]
    # The datasheet's "6E" typo must be refused.
    bad = ID12_EXAMPLE.replace(b"8E", b"6E")
    assert p.feed(bad) == []
    assert p.stats.bad_checksum == 1


def test_id12_requires_crlf_but_rdm6300_tolerates_it() -> None:
    assert Id12Parser().feed(RDM_EXAMPLE) == []
    assert Rdm6300Parser().feed(ID12_EXAMPLE) == [Tag(Tech.EM4100, "0C000621A5")]


def test_split_byte_by_byte_and_lowercase() -> None:
    p = Rdm6300Parser()
    out: list[Tag] = []
    for b in RDM_EXAMPLE.lower():  # lower() leaves STX/ETX alone
        out += p.feed(bytes([b]))
    assert out == [Tag(Tech.EM4100, "62E3086CED")]


def test_startup_mid_frame_noise_and_truncation_resync() -> None:
    p = Rdm6300Parser()
    stream = (
        RDM_EXAMPLE[6:]  # powered up mid-frame
        + b"\xff\x00garbage"
        + RDM_EXAMPLE[:8]  # cut short by the next STX
        + RDM_EXAMPLE
        + b"\x02\x36\x32\x5a"  # non-hex inside a frame
        + RDM_EXAMPLE
    )
    assert p.feed(stream) == [Tag(Tech.EM4100, "62E3086CED")] * 2
    assert p.stats.bad_frame >= 2
    assert p.stats.noise_bytes > 0


def test_bad_checksum_counted_never_yielded() -> None:
    p = Rdm6300Parser()
    frame = encode_ascii_frame(bytes.fromhex("62E3086CED"), checksum=0x09)
    assert p.feed(frame * 3) == []
    assert p.stats.bad_checksum == 3


def test_too_long_frame_rejected() -> None:
    p = Rdm6300Parser()
    assert p.feed(b"\x0262E3086CED0800\x03") == []
    assert p.stats.bad_frame == 1


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=40), st.sampled_from([RDM_EXAMPLE, ID12_EXAMPLE]))))
def test_ascii_parser_never_crashes_never_invents(chunks: list[bytes]) -> None:
    for parser in (Rdm6300Parser(), Id12Parser()):
        for tag in (t for c in chunks for t in parser.feed(c)):
            raw = bytes.fromhex(tag.uid)
            # Every tag yielded carries a valid checksum and occurs in the stream.
            frame = encode_ascii_frame(raw, crlf=isinstance(parser, Id12Parser))
            assert xor_checksum(raw) == int(frame[11:13], 16)
            assert frame[1:13].lower() in b"".join(chunks).lower()


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=5, max_size=5), st.integers(0, 255), st.integers(1, 13))
def test_ascii_frame_any_split_yields_exactly_valid(data: bytes, check: int, cut: int) -> None:
    frame = encode_ascii_frame(data, checksum=check)
    p = Rdm6300Parser()
    out = p.feed(frame[:cut]) + p.feed(frame[cut:])
    valid = check == xor_checksum(data)
    assert out == ([Tag(Tech.EM4100, data.hex().upper())] if valid else [])


# --- PN532 ----------------------------------------------------------------------------------


def test_pn532_command_frames_match_reference() -> None:
    assert command_frame(0x02).hex(" ") == "00 00 ff 02 fe d4 02 2a 00"
    assert sam_configuration().hex(" ") == "00 00 ff 05 fb d4 14 01 14 01 02 00"
    assert in_list_passive_target().hex(" ") == "00 00 ff 04 fc d4 4a 01 00 e1 00"
    assert rf_retries(0x10).hex(" ") == "00 00 ff 06 fa d4 32 05 ff 01 10 e5 00"


def test_pn532_parser_ack_nack_error_and_split_target() -> None:
    p = Pn532FrameParser()
    uid = bytes.fromhex("04A1B2C3D4E5F6")
    stream = ACK + b"\x13\x37" + target_response(uid) + NACK + bytes.fromhex("0000FF01FF7F8100")
    frames = []
    for i in range(len(stream)):
        frames += p.feed(stream[i : i + 1])
    assert isinstance(frames[0], Ack)
    assert isinstance(frames[1], Response)
    assert parse_passive_target(frames[1].data) == Tag(Tech.MIFARE, "04A1B2C3D4E5F6")
    assert isinstance(frames[2], Nack)
    assert isinstance(frames[3], Response) and frames[3].is_error
    assert p.stats.noise_bytes == 2


def test_pn532_bad_dcs_and_lcs_counted_then_resync() -> None:
    good = target_response(bytes.fromhex("DEADBEEF"))
    bad_dcs = bytearray(good)
    bad_dcs[-2] ^= 0x01
    bad_lcs = bytearray(good)
    bad_lcs[4] ^= 0x01
    p = Pn532FrameParser()
    frames = p.feed(bytes(bad_dcs) + bytes(bad_lcs) + good)
    assert [parse_passive_target(f.data) for f in frames if isinstance(f, Response)] == [
        Tag(Tech.MIFARE, "DEADBEEF")
    ]
    assert p.stats.bad_checksum == 2


def test_pn532_no_target_and_malformed() -> None:
    [f] = Pn532FrameParser().feed(no_target_response())
    assert isinstance(f, Response) and parse_passive_target(f.data) is None
    with pytest.raises(ValueError):
        parse_passive_target(bytes([0xD5, 0x4B, 1, 1, 0, 4, 8, 5, 1, 2, 3, 4, 5]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=30), st.just(target_response(b"\x01\x02\x03\x04")))))
def test_pn532_parser_never_crashes_never_invents(chunks: list[bytes]) -> None:
    p = Pn532FrameParser()
    stream = b"".join(chunks)
    for frame in (f for c in chunks for f in p.feed(c)):
        if isinstance(frame, Response):
            # Only checksummed frames come out: data followed by its DCS is in the stream.
            dcs = (-sum(frame.data)) & 0xFF
            assert frame.data + bytes([dcs]) in stream


def test_encode_frame_roundtrip() -> None:
    data = bytes([0xD5, 0x03, 0x32, 0x01, 0x06, 0x07])
    assert Pn532FrameParser().feed(encode_frame(data)) == [Response(data)]


# --- Wiegand --------------------------------------------------------------------------------


def test_wiegand26_reference_example() -> None:
    bits = "00101101000000001010001000"
    assert encode_wiegand((90 << 16) | 324, 26) == bits
    card = decode_wiegand(bits)
    assert (card.facility, card.card, card.printed) == (90, 324, "090,00324")
    assert card.tag.key == "w26:090,00324"


def test_wiegand_parity_and_length_rejected() -> None:
    bits = encode_wiegand(0x5A0144, 26)
    for i in range(26):
        flipped = bits[:i] + ("1" if bits[i] == "0" else "0") + bits[i + 1 :]
        with pytest.raises(ValueError, match="parity"):
            decode_wiegand(flipped)
    with pytest.raises(ValueError, match="bits"):
        decode_wiegand(bits[:-1])


def test_wiegand34_matches_em4100_dec32() -> None:
    card = decode_wiegand(encode_wiegand(0xE3086CED, 34))
    assert card.tag.key == "dec32:3808980205"
    assert card.tag.key in tag_keys("em4100:62E3086CED")


def test_wiegand_assembler_gap_ends_frame() -> None:
    a = WiegandAssembler(gap_s=0.025)
    bits = encode_wiegand(0x5A0144, 26)
    t = 0.0
    for b in bits:
        assert a.bit(int(b), t) is None
        t += 0.002
    assert a.flush(t + 0.01) is None  # not yet silent long enough
    card = a.flush(t + 0.05)
    assert card is not None and card.card == 324
    # A burst of noise (3 bits) is a bad length, not a card.
    for i in range(3):
        a.bit(1, 1.0 + i * 0.001)
    assert a.flush(2.0) is None
    assert a.stats.bad_length == 1


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="01", min_size=0, max_size=40))
def test_wiegand_decode_never_accepts_bad_parity(bits: str) -> None:
    try:
        card = decode_wiegand(bits)
    except ValueError:
        return
    assert encode_wiegand(int(bits[1:-1], 2), len(bits)) == bits
    assert card.bits == len(bits)


# --- USB keyboard readers -------------------------------------------------------------------


def _keys(text: str) -> list[int]:
    codes = {"0": 11, **{str(d): d + 1 for d in range(1, 10)}, "A": 30, "C": 46, "E": 18}
    return [codes[c] for c in text] + [KEY_ENTER]


def test_hid_decoder_dec32_and_timeout() -> None:
    d = KeystrokeDecoder()
    tags = [d.key(c, 0.01 * i) for i, c in enumerate(_keys("3808980205"))]
    assert tags[-1] == Tag(Tech.DEC32, "E3086CED")
    assert tags[-1].key in tag_keys("62E3086CED")
    # A partial line, then silence: the digits must not prefix the next card.
    d.key(4, 1.0)
    d.key(5, 1.01)
    tags = [d.key(c, 2.0 + 0.01 * i) for i, c in enumerate(_keys("3808980205"))]
    assert tags[-1] == Tag(Tech.DEC32, "E3086CED")
    assert d.stats.timeouts == 1


def test_hid_decode_line_forms() -> None:
    assert decode_line("00552173").key == "w26:008,27885"
    assert decode_line("62E3086CED").key == "em4100:62E3086CED"
    assert decode_line("04a1b2c3").key == "uid:04A1B2C3"
    with pytest.raises(ValueError):
        decode_line("12345")


def test_hid_unknown_key_spoils_line() -> None:
    d = KeystrokeDecoder()
    for i, c in enumerate([2, 3, 57, 4, 5, 6, 7, 8, 9, 10, 11, 2]):  # 57 = space
        d.key(c, i * 0.01)
    assert d.key(KEY_ENTER, 0.2) is None
    assert d.stats.bad_lines == 1


# --- roster forms ---------------------------------------------------------------------------


def test_tag_keys_forms() -> None:
    keys = tag_keys("em4100:62e3086ced")
    assert keys == {"em4100:62E3086CED", "dec32:3808980205", "w26:008,27885"}
    assert tag_keys("8,27885") == {"w26:008,27885"}
    assert tag_keys("dec24:00552173") == {"w26:008,27885"}
    assert tag_keys("04A1B2C3D4E5F6") == {"uid:04A1B2C3D4E5F6"}
    for bad in ("3808980205", "em4100:12", "w26:300,1", "dec32:99999999999", "foo:1"):
        with pytest.raises(ValueError):
            tag_keys(bad)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 300), st.floats(0, 0.5))))
def test_keystroke_decoder_never_crashes(keys: list[tuple[int, float]]) -> None:
    d, t = KeystrokeDecoder(), 0.0
    for code, dt in keys:
        t += dt
        tag = d.key(code, t)
        if tag is not None:
            assert code == KEY_ENTER or code == 96  # only a line end yields a tag


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.floats(0, 0.1))))
def test_wiegand_assembler_yields_only_parity_valid(bits: list[tuple[bool, float]]) -> None:
    a, t = WiegandAssembler(0.025), 0.0
    cards = []
    for value, dt in bits:
        t += dt
        if (card := a.bit(int(value), t)) is not None:
            cards.append(card)
    if (card := a.flush(t + 1)) is not None:
        cards.append(card)
    for card in cards:
        data = (card.facility << 16) | card.card
        decode_wiegand(encode_wiegand(data, card.bits))  # re-encodes to a valid frame


def test_pn532_extended_frame() -> None:
    data = bytes([0xD5, 0x41]) + bytes(range(256)) + b"\x00" * 4  # 262 bytes > 255
    n = len(data)
    lenm, lenl = n >> 8, n & 0xFF
    frame = bytes([0, 0, 0xFF, 0xFF, 0xFF, lenm, lenl, (-(lenm + lenl)) & 0xFF])
    frame += data + bytes([(-sum(data)) & 0xFF, 0])
    p = Pn532FrameParser()
    assert p.feed(frame[:100]) == []
    assert p.feed(frame[100:]) == [Response(data)]
