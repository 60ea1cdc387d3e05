"""Plate alphabets, per-country plate formats and confusable-character handling.

Pure functions only (stdlib): the trainer and the reader both import this module, so the
characters a model is trained on and the rules that check its output cannot drift apart.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

DIGITS = "0123456789"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
CN_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
CN_SPECIAL = "使领挂学警港澳"
CN_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # GA 36-2018: no I, no O
CN_NEV_CLASS = "ABCDEFGHJK"  # D/F, extended allocations

ALPHABET = DIGITS + LETTERS + CN_PROVINCES + CN_SPECIAL
"""Characters of Outpost's own OCR models; CTC class 0 is the blank, class i+1 is ALPHABET[i]."""

# Pairs an OCR model confuses; each maps to the characters it is commonly read as.
CONFUSABLE: dict[str, str] = {
    "0": "ODQ",
    "O": "0DQ",
    "D": "0O",
    "Q": "0O",
    "1": "IJLT7",
    "I": "1LJT",
    "L": "41I",
    "J": "1I",
    "T": "17I",
    "7": "T1",
    "8": "B",
    "B": "8",
    "5": "S",
    "S": "5",
    "2": "Z",
    "Z": "2",
    "6": "G",
    "G": "6",
    "4": "AL",
    "A": "4",
}


def confusable(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` are a pair that OCR commonly mixes up."""
    return a == b or b in CONFUSABLE.get(a, "")


_CLASS_RE = re.compile(r"\[([^\]]+)\](?:\{(\d+)\})?|(.)(?:\{(\d+)\})?")


def parse_template(pattern: str) -> list[str]:
    """Expand a position template such as ``[京沪][A-HJ-NP-Z][0-9]{5}`` into per-position sets.

    Only character classes, literal characters and ``{n}`` repeats are allowed; the same
    string is a valid regular expression for the whole plate.
    """
    return list(_parsed(pattern))


@functools.lru_cache(maxsize=256)
def _parsed(pattern: str) -> tuple[str, ...]:
    # Every OCR reading is fitted to every format: parsing once per pattern, not per
    # reading, took a quarter off the time per frame (profile of PlateReader.read_image).
    sets: list[str] = []
    for m in _CLASS_RE.finditer(pattern):
        body, count, literal, lcount = m.groups()
        if body is not None:
            chars = _expand_class(body)
            n = int(count) if count else 1
        else:
            if literal in "^$":
                continue
            chars, n = literal, int(lcount) if lcount else 1
        sets.extend([chars] * n)
    return tuple(sets)


def _expand_class(body: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            out.extend(chr(c) for c in range(ord(body[i]), ord(body[i + 2]) + 1))
            i += 3
        else:
            out.append(body[i])
            i += 1
    return "".join(dict.fromkeys(out))


@dataclass(frozen=True)
class PlateFormat:
    """One valid layout of a country's plates, e.g. Chinese ordinary 7-character plates."""

    name: str
    pattern: str
    kind: str = ""
    prefer: int = 0
    """Substitutions this format is forgiven against the others in ``apply_format``: a
    layout that most of a country's plates follow wins over a catch-all one when the
    reading is that many confusable swaps from it."""

    @property
    def positions(self) -> tuple[str, ...]:
        return _parsed(self.pattern)

    def matches(self, text: str) -> bool:
        return re.fullmatch(self.pattern.strip("^$"), text) is not None


US_LAYOUTS = (
    ("1abc234", "[0-9][A-Z]{3}[0-9]{3}"),  # California
    ("abc1234", "[A-Z]{3}[0-9]{4}"),  # New York, Texas, Pennsylvania, Ohio, Georgia, …
    ("abc123", "[A-Z]{3}[0-9]{3}"),
    ("123abc", "[0-9]{3}[A-Z]{3}"),
)
"""Serial layouts of the standard plates of many US states (names: a letter, 1 a digit)."""
PREFER_FLOOR = 0.02
"""A preferred layout's swap must be the model's own: the character put in must have had at
least this probability where the swapped one was read. With the table's swaps allowed too,
readings of every other layout were bent into these (`DP7160` read `DPT160`; US dev crops
82.0 -> 76.7 %). With this floor the US crops read 83.0 % (0.005: 83.0, 0.05: 82.4, 0.3:
82.0), nearly all of it a letter `O` read as `0` in a run of letters (`NOX218`)."""

_P = f"[{CN_PROVINCES}使领]"
_L = "[A-HJ-NP-Z]"
_X = "[A-HJ-NP-Z0-9]"

COUNTRY_FORMATS: dict[str, list[PlateFormat]] = {
    "cn": [
        PlateFormat("cn-ordinary", f"{_P}{_L}{_X}{{4}}[A-HJ-NP-Z0-9挂学港澳]", "ordinary"),
        PlateFormat("cn-police", f"{_P}{_L}{_X}{{4}}警", "police"),
        PlateFormat("cn-nev-small", f"{_P}{_L}[{CN_NEV_CLASS}]{_X}[0-9]{{4}}", "nev-small"),
        PlateFormat("cn-nev-large", f"{_P}{_L}[0-9]{{5}}[{CN_NEV_CLASS}]", "nev-large"),
    ],
    # US states use too many layouts for strict positional rules: any 2–8 alphanumerics
    # are a plate. The serial layouts that most states' standard plates follow are
    # preferred by one swap of a confusable pair (a 2 read as Z among digits).
    "us": [
        *(PlateFormat(f"us-{name}", pat, "ordinary", prefer=1) for name, pat in US_LAYOUTS),
        *(PlateFormat(f"us-{n}", f"[A-Z0-9]{{{n}}}", "ordinary") for n in range(2, 9)),
    ],
}


PREFERRED_FORMATS = frozenset(f.name for fs in COUNTRY_FORMATS.values() for f in fs if f.prefer)
"""The formats of the layouts that many of a country's plates follow (``prefer``)."""


def is_chinese(text: str) -> bool:
    return bool(text) and text[0] in CN_PROVINCES + "使领"


@dataclass(frozen=True)
class Corrected:
    """A plate string after applying a format, with what changed."""

    text: str
    format: str | None
    kind: str
    substitutions: int


def apply_format(
    chars: Sequence[str],
    alternatives: Sequence[dict[str, float]],
    formats: Sequence[PlateFormat],
) -> Corrected:
    """Fit OCR output to the best-matching format of the given list.

    ``alternatives[i]`` maps candidate characters at position i to their probabilities
    (from the model's output at that character's peak). A character not allowed at its
    position is replaced by the most probable allowed candidate, or else by an allowed
    confusable character; if neither exists the format is rejected. The format needing the
    fewest substitutions, less what it is forgiven (``PlateFormat.prefer``), wins, the
    first listed on a tie; with none fitting, the text is returned as read.
    """
    best: Corrected | None = None
    best_cost = 0
    for fmt in formats:
        positions = fmt.positions
        if len(positions) != len(chars):
            continue
        out: list[str] = []
        subs = 0
        for ch, allowed, alts in zip(chars, positions, alternatives, strict=True):
            if ch in allowed:
                out.append(ch)
                continue
            pick = _best_allowed(ch, allowed, alts, fmt.prefer == 0)
            if pick is None:
                break
            out.append(pick)
            subs += 1
        else:
            if fmt.prefer and subs > fmt.prefer:
                continue
            cost = subs - fmt.prefer
            if best is None or cost < best_cost:
                best, best_cost = Corrected("".join(out), fmt.name, fmt.kind, subs), cost
    if best is None:
        return Corrected("".join(chars), None, "", 0)
    return best


def _best_allowed(
    ch: str, allowed: str, alts: dict[str, float], table: bool = True
) -> str | None:
    for cand, p in sorted(alts.items(), key=lambda kv: -kv[1]):
        if cand in allowed and confusable(ch, cand) and (table or p >= PREFER_FLOOR):
            return cand
    if not table:
        return None
    for cand in CONFUSABLE.get(ch, ""):
        if cand in allowed:
            return cand
    return None


def ones_among_digits(text: str) -> str:
    """``text`` with each ``I`` that stands between digits, or between a digit and an end
    of the plate, read as ``1`` (``I4I0502`` -> ``1410502``).

    US serials put letters in groups, not one alone among digits, and many states' `1` is
    drawn as a bar like their `I`. In that place the US dev plates (crops and scenes) hold
    `1` 239 times and `I` twice. An `I` between a letter and a digit is left alone (`1` 80
    times, `I` 4). `O` and `Q` are left alone too: the models already read them as `0`
    among digits, and a `Q` beside an `O` misread as `0` became a second `0` (`444NOQ`).
    The swap needs no probability of `1` from the model (``PREFER_FLOOR``): with that floor
    one of the five plates it mends on the US dev crops stayed `I`.
    """
    if len(text) < 2:
        return text
    out = list(text)
    for i, ch in enumerate(text):
        if ch != "I":
            continue
        left = i == 0 or text[i - 1].isdigit()
        right = i == len(text) - 1 or text[i + 1].isdigit()
        if left and right:
            out[i] = "1"
    return "".join(out)


def twos_in_digit_runs(text: str) -> str:
    """``text`` with each ``Z`` that stands inside a run of digits, at least three of them
    around it and one on each side, or at the plate's end after two digits or more, read
    as ``2`` (``R8Z0503`` -> ``R820503``, ``CHT903Z`` -> ``CHT9032``).

    The models read many plates' narrow `2` as `Z` with near certainty, so the model's own
    probability of the `2` (``PREFER_FLOOR``) cannot put it back. No US dev plate (973,
    crops and scenes) holds a `Z` in either place; 76 hold a `2` inside such a run, 44 at
    the end after two digits or more. With fewer digits around it the letter may be the
    layout's own: `KC4Z3X`, `DG2Z6U` (a letter between single digits), which a rule for
    any `Z` between two digits turned into `2`; and a `Z` may start a plate before digits
    (`Z860VT`). The same rule for `B`, `G`, `S` and `D` (`8`, `6`, `5`, `0`) mended fewer
    plates than it broke on the dev sets: those letters do stand inside runs of digits
    (`8D79882`).
    """
    out = list(text)
    for i, ch in enumerate(text):
        if ch != "Z":
            continue
        before = len(text[:i]) - len(text[:i].rstrip(DIGITS))
        after = len(text[i + 1 :]) - len(text[i + 1 :].lstrip(DIGITS))
        inside = before and after and before + after >= 3
        ending = i == len(text) - 1 and before >= 2
        if inside or ending:
            out[i] = "2"
    return "".join(out)


SERIAL_LETTERS = 2
"""The most letters the five-character serial of an ordinary Chinese plate holds."""


def serial_letters(text: str, alternatives: Sequence[dict[str, float]]) -> str:
    """``text`` with letters of an ordinary Chinese plate's serial read as digits while it
    holds more than ``SERIAL_LETTERS`` (``皖AJS96Y`` -> ``皖AJ596Y``): of the letters that
    are confusables of a digit, first the one whose digit the model gave the most
    probability, then the least sure letter; each letter's digit as a format's swap
    picks it (``_best_allowed``: the model's most probable look-alike digit, else the
    first in ``CONFUSABLE``).

    Serials are allotted with at most two letters (the public self-selection rules for
    ordinary plates); none of the 300 Chinese dev plates holds more. The models read a `5`
    cut by the crop's edge as `S`, too surely for the format's own swaps, which only mend
    a character the position does not allow.
    """
    if len(text) != 7 or not is_chinese(text):
        return text
    out = list(text)
    while True:
        letters = [i for i in range(2, 7) if out[i].isascii() and out[i].isalpha()]
        if len(letters) <= SERIAL_LETTERS:
            return "".join(out)
        options = []
        for i in letters:
            alts = alternatives[i] if i < len(alternatives) else {}
            digit = _best_allowed(out[i], DIGITS, alts)
            if digit is not None:
                options.append((alts.get(digit, 0.0), -alts.get(out[i], 1.0), i, digit))
        if not options:
            return "".join(out)
        _, _, i, digit = max(options)
        out[i] = digit


FOUR_LETTERS = re.compile(r"[A-Z]{4}[0-9]{3}")
"""Four letters and three digits: no US standard layout. None of the 973 US dev plates
(crops and scenes) is written so, while 66 follow California's ``1ABC234`` and 92
``ABC1234``."""


def mend_four_letters(text: str, alternatives: Sequence[dict[str, float]]) -> str:
    """``text`` with one letter read as a digit where the reading is four letters and three
    digits (``FOUR_LETTERS``): the first letter (California's ``1ABC234``: ``LGLS168`` ->
    ``4GLS168``), or where that one looks like no digit, the fourth (``ABC1234``:
    ``CLTD108`` -> ``CLT0108``). The letter must be a confusable of a digit; the digit is
    picked as a format's swap picks it (``_best_allowed``): the model's most probable
    look-alike digit there, else the first in ``CONFUSABLE``.

    California's open `4` (upright left stroke, its top not closed) is read as `L` with
    near certainty, so the model gives the `4` too little to pass ``PREFER_FLOOR``; the
    layouts themselves say which character is a digit.
    """
    if not FOUR_LETTERS.fullmatch(text):
        return text
    for i in (0, 3):
        digit = _best_allowed(text[i], DIGITS, alternatives[i] if i < len(alternatives) else {})
        if digit is not None:
            return text[:i] + digit + text[i + 1 :]
    return text


Rule = Callable[[str, Sequence[dict[str, float]]], str]
"""A mend of a reading (its text, each position's candidate probabilities) that position
templates cannot express."""


def _text_only(rule: Callable[[str], str]) -> Rule:
    def apply(text: str, alternatives: Sequence[dict[str, float]]) -> str:
        return rule(text)

    return apply


@dataclass(frozen=True)
class TextRules:
    """A country's mends of a reading, beside its formats (``fit_reading``)."""

    before: tuple[Rule, ...] = ()
    """Applied in turn to the reading before its formats are fitted."""
    after: tuple[Rule, ...] = ()
    """Applied in turn to the fitted text (what no format's swap mended); a changed text
    is fitted again."""


COUNTRY_RULES: dict[str, TextRules] = {
    "cn": TextRules(before=(serial_letters,)),
    "us": TextRules(
        before=(_text_only(ones_among_digits), _text_only(twos_in_digit_runs)),
        after=(mend_four_letters,),
    ),
}


def fit_reading(
    text: str,
    alternatives: Sequence[dict[str, float]],
    formats: Mapping[str, Sequence[PlateFormat]],
) -> Corrected:
    """A reading fitted to the configured countries' formats (``formats``: by country):
    a Chinese reading to the Chinese formats, any other to the rest, each configured
    country's ``COUNTRY_RULES`` applied around the fit (``apply_format``)."""
    chinese = is_chinese(text)
    countries = [c for c in formats if (c == "cn") == chinese]
    fmts = [f for c in countries for f in formats[c]]
    rules = [COUNTRY_RULES[c] for c in countries if c in COUNTRY_RULES]
    for rules_of in rules:
        for rule in rules_of.before:
            text = rule(text, alternatives)
    fitted = apply_format(list(text), alternatives, fmts)
    for rules_of in rules:
        for rule in rules_of.after:
            mended = rule(fitted.text, alternatives)
            if mended != fitted.text:
                fitted = apply_format(list(mended), alternatives, fmts)
    return fitted


def normalise(text: str) -> str:
    """Upper-case, drop separators (spaces, dashes, dots, middle dots)."""
    return "".join(c for c in text.upper() if c.isalnum())


def fold(text: str) -> str:
    """Collapse confusable characters to one representative, for fuzzy comparisons."""
    table = str.maketrans("ODQIJLBSZG", "0001118526")
    return normalise(text).translate(table)


CONFUSABLE_SWAP = 0.25
"""What a confusable swap (``CONFUSABLE``: `0`/`O`, `8`/`B`, …) costs in ``match_distance``."""
PROVINCE_SWAP = 0.5
"""What one Chinese province character read for another costs in ``match_distance``: more
than a confusable swap, less than any other character. The province is the character the
models read worst (Chinese dev crops: province right 93.3 %, the rest 97.0 %), and with
``home_provinces`` set a car from elsewhere is read with the home province more often
still. At the default ``match_distance`` (0.5) a reading whose province alone is wrong
still matches its watchlist entry: an alarm missed is worse than one to check."""
LOOKALIKE_SWAP = 0.5
"""What a swap of letters that plate fonts draw alike, but which no format can tell
apart (``LOOKALIKES``), costs in ``match_distance``."""
LOOKALIKES = frozenset({frozenset("MH"), frozenset("MW")})
"""The gothic `M` whose middle stops half-way, read as `H`, and the narrow upright `W` of
Texas and California, read as `M` (US dev scenes: 6 of the misreads of the labelled
crops; Chinese dev crops: 2). Letters at the same positions, so ``CONFUSABLE`` (which the
formats use to mend a character a position does not allow) leaves them out."""


def match_distance(a: str, b: str, confusion_cost: float = CONFUSABLE_SWAP) -> float:
    """Edit distance where swapping confusable characters costs ``confusion_cost``, one
    province for another ``PROVINCE_SWAP`` and look-alike letters ``LOOKALIKE_SWAP``."""
    a, b = normalise(a), normalise(b)
    prev = [float(j) for j in range(len(b) + 1)]
    for i, ca in enumerate(a, 1):
        cur = [float(i)] + [0.0] * len(b)
        for j, cb in enumerate(b, 1):
            if ca == cb:
                sub = 0.0
            elif confusable(ca, cb) or confusable(cb, ca):
                sub = confusion_cost
            elif ca in CN_PROVINCES and cb in CN_PROVINCES:
                sub = PROVINCE_SWAP
            elif frozenset((ca, cb)) in LOOKALIKES:
                sub = LOOKALIKE_SWAP
            else:
                sub = 1.0
            cur[j] = min(prev[j] + 1.0, cur[j - 1] + 1.0, prev[j - 1] + sub)
        prev = cur
    return prev[-1]
