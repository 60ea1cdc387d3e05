"""Plate-format rules and confusable-character handling."""

from __future__ import annotations

import pytest

from agent.plates.formats import (
    ALPHABET,
    COUNTRY_FORMATS,
    apply_format,
    fold,
    match_distance,
    mend_four_letters,
    normalise,
    ones_among_digits,
    parse_template,
    serial_letters,
    twos_in_digit_runs,
)

CN = COUNTRY_FORMATS["cn"]
US = COUNTRY_FORMATS["us"]


def _alts(text: str) -> list[dict[str, float]]:
    return [{c: 0.9} for c in text]


def test_parse_template_expands_classes_and_repeats() -> None:
    sets = parse_template("[京沪][A-C][0-9]{3}X")
    assert sets == ["京沪", "ABC", "0123456789", "0123456789", "0123456789", "X"]


@pytest.mark.parametrize(
    "text,fmt",
    [
        ("京A12345", "cn-ordinary"),
        ("皖AD12345", "cn-nev-small"),
        ("粤B12345D", "cn-nev-large"),
        ("京A1234警", "cn-police"),
        ("粤Z1234港", "cn-ordinary"),
    ],
)
def test_valid_chinese_plates_keep_their_text(text: str, fmt: str) -> None:
    got = apply_format(list(text), _alts(text), CN)
    assert (got.text, got.format, got.substitutions) == (text, fmt, 0)


def test_chinese_serial_letters_o_and_i_become_digits() -> None:
    got = apply_format(list("京AO12I5"), _alts("京AO12I5"), CN)
    assert got.text == "京A01215"
    assert got.substitutions == 2


def test_authority_letter_position_turns_digit_into_letter() -> None:
    # Position 2 must be a letter: a read 8 is a B.
    got = apply_format(list("沪812345"), _alts("沪812345"), CN)
    assert got.text == "沪B12345"


def test_model_alternatives_are_preferred_over_the_static_table() -> None:
    alts = _alts("京AQ2345")
    alts[2] = {"Q": 0.5, "0": 0.3, "D": 0.2}
    got = apply_format(list("京AQ2345"), alts, CN)
    # Q is allowed in a Chinese serial, so it is kept as read.
    assert got.text == "京AQ2345"
    alts[2] = {"O": 0.5, "D": 0.3, "0": 0.2}
    got = apply_format(list("京AO2345"), alts, CN)
    assert got.text == "京AD2345"  # the model's second choice D beats the table's 0


def test_us_plates_are_not_rewritten() -> None:
    got = apply_format(list("OUT0FRNT"), _alts("OUT0FRNT"), US)
    assert got.text == "OUT0FRNT" and got.substitutions == 0


def test_unfittable_text_is_returned_as_read() -> None:
    got = apply_format(list("京"), _alts("京"), CN)
    assert got.format is None and got.text == "京"


def test_alphabet_has_no_duplicates_and_covers_provinces() -> None:
    assert len(set(ALPHABET)) == len(ALPHABET)
    assert "皖" in ALPHABET and "警" in ALPHABET


def test_confusion_aware_distance() -> None:
    assert match_distance("ABC123", "ABC123") == 0
    assert match_distance("AB0123", "ABO123") == pytest.approx(0.25)
    assert match_distance("ABC123", "ABX123") == 1
    assert match_distance("ABC-123", "abc 123") == 0
    assert fold("B0I5") == fold("8O15")
    assert normalise("京A·12345") == "京A12345"


def test_a_province_or_a_look_alike_letter_costs_half_a_character() -> None:
    """``PROVINCE_SWAP``, ``LOOKALIKE_SWAP``: one of them alone keeps a reading within the
    watchlist's default distance (0.5), one with any other difference does not."""
    assert match_distance("赣BLU198", "豫BLU198") == pytest.approx(0.5)
    assert match_distance("CWH3083", "CWM3083") == pytest.approx(0.5)
    assert match_distance("MSG979", "WSG979") == pytest.approx(0.5)
    assert match_distance("赣BLU19B", "豫BLU198") == pytest.approx(0.75)  # and an 8/B swap
    assert match_distance("京A12345", "AA12345") == 1  # a province for a letter: no discount
    assert match_distance("HWA123", "WHA123") == 2  # H and W are not alike


def test_a_us_layout_takes_the_models_own_second_choice() -> None:
    # a Z read among the digits of ABC1234, where the model also saw a 2
    alts = _alts("AKS43Z9")
    alts[5] = {"Z": 0.88, "2": 0.10, "7": 0.01}
    got = apply_format(list("AKS43Z9"), alts, US)
    assert (got.text, got.format, got.substitutions) == ("AKS4329", "us-abc1234", 1)
    # a 0 in a run of letters (ABC123), the letter O second
    alts = _alts("N0X218")
    alts[1] = {"0": 0.6, "O": 0.35}
    assert apply_format(list("N0X218"), alts, US).text == "NOX218"


def test_californias_open_four_read_as_l_is_a_swap_the_layout_takes() -> None:
    """California's open 4 is read as L (GT crops of the US dev scenes: 7 of 41 misreads);
    where the model gave the 4 a share, 1ABC234 takes it back, and a watchlist plate
    forgives the pair as it forgives O/0."""
    alts = _alts("LGLS168")
    alts[0] = {"L": 0.9, "4": 0.05}
    got = apply_format(list("LGLS168"), alts, US)
    assert (got.text, got.format, got.substitutions) == ("4GLS168", "us-1abc234", 1)
    alts[0] = {"L": 0.99, "4": 0.005}  # below PREFER_FLOOR: kept as read
    assert apply_format(list("LGLS168"), alts, US).text == "LGLS168"
    assert match_distance("4GLS168", "LGLS168") == pytest.approx(0.25)


def test_a_us_layout_never_swaps_what_the_model_did_not_see() -> None:
    # a 7 read with certainty stays a 7 though ABC123 wants a letter (a DC plate's AB1234)
    got = apply_format(list("DP7160"), _alts("DP7160"), US)
    assert (got.text, got.format, got.substitutions) == ("DP7160", "us-6", 0)
    alts = _alts("AKS43Z9")
    alts[5] = {"Z": 0.99, "2": 0.005}  # below PREFER_FLOOR
    assert apply_format(list("AKS43Z9"), alts, US).text == "AKS43Z9"
    # two swaps from a layout are too many: the reading is kept
    alts = _alts("AK543Z9")
    alts[2] = {"5": 0.6, "S": 0.3}
    alts[5] = {"Z": 0.6, "2": 0.3}
    assert apply_format(list("AK543Z9"), alts, US).text == "AK543Z9"


def test_a_reading_that_fits_a_us_layout_is_named_by_it() -> None:
    got = apply_format(list("4PCI264"), _alts("4PCI264"), US)
    assert (got.text, got.format, got.substitutions) == ("4PCI264", "us-1abc234", 0)


def test_an_i_among_digits_is_a_one() -> None:
    assert ones_among_digits("I4I0502") == "1410502"  # at the start, and between digits
    assert ones_among_digits("24704I") == "247041"  # at the end
    assert ones_among_digits("I4CVI0") == "14CVI0"  # a letter on one side: left alone
    assert ones_among_digits("QUILLS") == "QUILLS"
    assert ones_among_digits("I") == "I"  # nothing beside it to tell
    assert ones_among_digits("40O7Q1") == "40O7Q1"  # O and Q are left alone


def test_a_chinese_serial_holds_at_most_two_letters() -> None:
    assert serial_letters("皖AJS96Y", _alts("皖AJS96Y")) == "皖AJ596Y"  # S is the one like a digit
    assert serial_letters("皖AJU21S", _alts("皖AJU21S")) == "皖AJU215"
    # of two letters like digits: the one whose digit the model gave more
    alts = _alts("皖ASB96Y")
    alts[2] = {"S": 0.9, "5": 0.05}
    alts[3] = {"B": 0.7, "8": 0.2}
    assert serial_letters("皖ASB96Y", alts) == "皖AS896Y"
    # without the model's word: the less sure letter
    alts = [{c: 0.9} for c in "皖ASB96Y"]
    alts[2] = {"S": 0.6}
    assert serial_letters("皖ASB96Y", alts) == "皖A5B96Y"
    # four letters: two of them become digits
    assert serial_letters("皖AZSBG1", _alts("皖AZSBG1")).count("A") == 1
    assert sum(c.isalpha() for c in serial_letters("皖AZSBG1", _alts("皖AZSBG1"))[2:]) == 2
    # two letters, or letters like no digit, or no ordinary plate: as read
    assert serial_letters("皖AJS961", _alts("皖AJS961")) == "皖AJS961"
    assert serial_letters("皖AKWXY1", _alts("皖AKWXY1")) == "皖AKWXY1"
    assert serial_letters("皖AD12345", _alts("皖AD12345")) == "皖AD12345"
    assert serial_letters("ABS96YS", _alts("ABS96YS")) == "ABS96YS"


def test_a_z_inside_a_run_of_digits_is_a_two() -> None:
    assert twos_in_digit_runs("R8Z0503") == "R820503"  # one digit before, four after
    assert twos_in_digit_runs("AKS43Z9") == "AKS4329"
    assert twos_in_digit_runs("71Z27Z5") == "7122725"  # every such Z
    # a letter between single digits may be the layout's own
    assert twos_in_digit_runs("KC4Z3X") == "KC4Z3X"
    # at the end after two digits or more
    assert twos_in_digit_runs("CHT903Z") == "CHT9032"
    assert twos_in_digit_runs("886Z") == "8862"
    assert twos_in_digit_runs("AB3Z") == "AB3Z"  # one digit before it
    # digits on one side only: left alone
    assert twos_in_digit_runs("Z123") == "Z123"  # a Z may start a plate
    assert twos_in_digit_runs("WTCZ49") == "WTCZ49"
    assert twos_in_digit_runs("") == ""


def test_four_letters_and_three_digits_lead_with_a_digit() -> None:
    # California's open 4 read as L, with no probability left for the 4
    assert mend_four_letters("LGLS168", _alts("LGLS168")) == "4GLS168"
    # where the model gave a digit some probability, that digit
    alts = _alts("LGLS168")
    alts[0] = {"L": 0.9, "1": 0.05, "4": 0.01}
    assert mend_four_letters("LGLS168", alts) == "1GLS168"
    assert mend_four_letters("SNWV168", _alts("SNWV168")) == "5NWV168"
    assert mend_four_letters("ZFAV033", []) == "2FAV033"  # no alternatives: the table's digit
    # where the first letter looks like no digit, the fourth (ABC1234)
    assert mend_four_letters("CLTD108", _alts("CLTD108")) == "CLT0108"
    assert mend_four_letters("MXYW184", _alts("MXYW184")) == "MXYW184"  # neither: as read
    # other shapes are left alone
    assert mend_four_letters("MXY4184", _alts("MXY4184")) == "MXY4184"
    assert mend_four_letters("LGL168", _alts("LGL168")) == "LGL168"
    assert mend_four_letters("LGLS1688", _alts("LGLS1688")) == "LGLS1688"
    assert mend_four_letters("4GLS168", _alts("4GLS168")) == "4GLS168"
