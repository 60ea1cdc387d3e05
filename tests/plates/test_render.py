"""The synthetic renderer produces valid plates of every supported layout."""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

# training/ is not an installed package (it is only needed to make models).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

pytest.importorskip("PIL", reason="the renderer needs Pillow (training extra)")

from agent.plates.formats import ALPHABET, CN_PROVINCES, CN_SPECIAL, COUNTRY_FORMATS
from agent.plates.preprocess import OCR_HEIGHT, OCR_WIDTH, ocr_input

render = pytest.importorskip("training.render")


def _fonts_present() -> bool:
    try:
        for rel in render.LATIN_FONTS + render.CJK_FONTS:
            render.find_font(rel)
    except FileNotFoundError:
        return False
    return True


pytestmark = pytest.mark.skipif(
    not _fonts_present(),
    reason=f"Debian fonts missing: apt-get install {render.FONT_PACKAGES}",
)


@pytest.mark.parametrize("kind", render.CN_KINDS)
def test_chinese_plates_fit_a_chinese_format(kind: str) -> None:
    rng = random.Random(kind)
    for _ in range(20):
        plate = render.render_cn(rng, kind)
        assert any(f.matches(plate.text) for f in COUNTRY_FORMATS["cn"]), plate.text
        assert plate.two_row == (kind == "yellow2")
        h, w = plate.image.shape[:2]
        assert (h, w) == ((220, 440) if plate.two_row else (140, 480 if "green" in kind else 440))
        if kind.startswith("green"):
            assert len(plate.text) == 8
        if kind == "police":
            assert plate.text.endswith("警")


def test_us_plates_fit_the_us_format_and_have_ink() -> None:
    rng = random.Random(7)
    for _ in range(30):
        plate = render.render_us(rng)
        assert any(f.matches(plate.text) for f in COUNTRY_FORMATS["us"]), plate.text
        assert plate.image.std() > 10


def test_samples_are_reproducible_and_in_the_alphabet() -> None:
    a = [render.sample(random.Random(3))[1] for _ in range(1)]
    b = [render.sample(random.Random(3))[1] for _ in range(1)]
    assert a == b
    rng = random.Random(11)
    for _ in range(30):
        img, text, two_row = render.sample(rng)
        assert set(text) <= set(ALPHABET)
        assert ocr_input(img, two_row).shape == (OCR_HEIGHT, OCR_WIDTH)


def test_training_chunks_are_reproducible_from_the_seed() -> None:
    import hashlib

    from training.plates import _render_chunk

    def digest(seed: int) -> str:
        xs, ys, lens = _render_chunk((seed, 0, 12, {"cn_share": 0.5}))
        return hashlib.sha256(xs.tobytes() + ys.tobytes() + lens.tobytes()).hexdigest()

    assert digest(1) == digest(1)
    assert digest(1) != digest(2)


def test_plate_font_glyphs_have_the_shapes_system_fonts_lack() -> None:
    for style in range(render.BAR_STYLES):
        one = render._glyph("1", f"bar{style}")
        assert one.shape[1] < 0.4 * one.shape[0]  # a narrow bar, with or without its flag
    for style in range(render.SERIF_STYLES):
        i = render._glyph("I", f"serif{style}")
        assert i[:, 0].any() and i[0].all() and i[-1].all()  # serifs reach both sides
    for style in range(render.STROKE_STYLES):
        three = render._glyph("3", f"stroke{style}")
        corner = three[: three.shape[0] // 10, : three.shape[1] // 8]
        assert (corner > 127).any()  # a flat top reaches the top-left corner; a round one does not
        assert render._glyph("M", f"stroke{style}").shape[0] > 30
    for style in range(render.OPEN4_STYLES):
        four = render._glyph("4", f"open4{style}") > 127
        top = four[: four.shape[0] // 12].nonzero()[1] / four.shape[1]
        upright = style >= render.OPEN4_STYLES // 2
        assert (top.min() < 0.2) == upright  # the California 4's left stroke barely leans
        assert four[int(four.shape[0] * 0.75) :, int(four.shape[1] * 0.5) :].any()  # the stem
    for style in range(render.STROKE_VARIANTS):
        g = render._glyph("G", f"stroke{style}") > 127
        zero = render._glyph("0", f"stroke{style % render.STROKE_STYLES}") > 127
        h, w = g.shape
        assert not g[int(h * 0.3) : int(h * 0.48), int(w * 0.8) :].any()  # open above the bar
        bar = (slice(int(h * 0.5), int(h * 0.62)), slice(int(w * 0.45), int(w * 0.7)))
        assert g[bar].any() and not zero[bar].any()  # the bar turns in; 0 is hollow there
        w_ = render._glyph("W", f"stroke{style}") > 127
        top_row = w_[2, int(w_.shape[1] * 0.4) : int(w_.shape[1] * 0.6)]
        assert top_row.any() == (style < render.STROKE_STYLES)  # middle apex at full height
        foot = w_[-3].astype(np.int8)
        assert (np.diff(foot) == 1).sum() == 2  # two feet...
        assert not foot[: w_.shape[1] // 10].any()  # ...inside the corners, unlike M's legs
        q = render._glyph("Q", f"stroke{style}") > 127
        assert q.shape[0] > zero.shape[0] or q.sum() > zero.sum()  # the tail adds ink


def test_plate_gothic_glyphs_tell_the_confusable_pairs_apart() -> None:
    def ink(ch: str, style: int) -> np.ndarray:
        return render._glyph(ch, f"stroke{style}") > 127

    for style in range(render.STROKE_VARIANTS):
        for ch in render.GOTHIC_CHARS:
            g = ink(ch, style)
            assert 1.3 < g.shape[0] / g.shape[1] < 2.2, (ch, style)  # narrow, as plates are
        two, zed = ink("2", style), ink("Z", style)
        corner = (slice(0, two.shape[0] // 10), slice(0, two.shape[1] // 8))
        assert zed[corner].any() and not two[corner].any()  # Z's bar is square; 2's top is round
        assert two[-3, : two.shape[1] // 8].any()  # ...and both stand on a flat base
        s, eight = ink("S", style), ink("8", style)
        h, w = s.shape
        left = (slice(int(h * 0.5), int(h * 0.55)), slice(0, w // 8))
        assert not s[left].any() and eight[left].any()  # S is open left below the middle
        five, six = ink("5", style), ink("6", style)
        top_right = (slice(0, five.shape[0] // 12), slice(-five.shape[1] // 6, None))
        assert five[top_right].any() and not six[top_right].any()  # 5's bar; 6's round hook
        d, b = ink("D", style), ink("B", style)
        h, w = d.shape
        waist = (slice(int(h * 0.45), int(h * 0.52)), slice(w // 4, w // 2))
        assert not d[waist].any() and b[waist].any()  # B's middle bar; D is hollow there
        six, nine = ink("6", style), ink("9", style)
        turned = nine[::-1, ::-1]
        assert six.shape == turned.shape
        assert (six & turned).sum() > 0.85 * (six | turned).sum()  # the 9 is the 6 turned over


def test_elastic_bends_a_glyph_without_losing_it() -> None:
    mask = render._glyph("皖", render.CJK_FONTS[0])
    bent = render.elastic(mask, 0.05 * mask.shape[0], seed=3)
    assert np.array_equal(bent, render.elastic(mask, 0.05 * mask.shape[0], seed=3))  # seeded
    assert not np.array_equal(bent, render.elastic(mask, 0.05 * mask.shape[0], seed=4))
    ink, ink_bent = mask > 127, bent > 127
    assert 0.8 < ink_bent.sum() / ink.sum() < 1.25  # the strokes move, they do not vanish
    assert (ink & ink_bent).sum() < 0.9 * ink.sum()  # ...and they do move
    assert np.array_equal(render.elastic(mask, 0.0, seed=3), mask)


def _notdef(rel: str) -> np.ndarray:
    return render._glyph("\ue000", rel)  # a private-use code point: no font draws it


@pytest.mark.parametrize("rel", render.CJK_FONTS)
def test_every_cjk_face_draws_every_chinese_character(rel: str) -> None:
    missing = _notdef(rel)
    for ch in CN_PROVINCES + CN_SPECIAL:
        g = render._glyph(ch, rel)
        assert g.shape[0] > 40 and (g > 127).sum() > 300, (rel, ch)
        assert g.shape != missing.shape or (g != missing).any(), (rel, ch)  # not the box


def _row_runs(mask: np.ndarray) -> float:
    """Mean length of the ink runs along the rows: the vertical strokes' widths."""
    m = (mask > 127).astype(np.int8)
    edges = np.diff(np.pad(m, ((0, 0), (1, 1))), axis=1)
    starts, ends = (edges == 1).nonzero()[1], (edges == -1).nonzero()[1]
    return float((ends - starts).mean())


def test_condensed_chinese_glyphs_keep_their_vertical_strokes() -> None:
    rel = render.CJK_FONTS[1]
    plain = np.zeros((90, 45, 3), np.uint8)
    condensed = plain.copy()
    render.draw_glyph(plain, "皖", (0, 0, 45, 90), rel, (255, 255, 255))
    render.draw_glyph(condensed, "皖", (0, 0, 45, 90), rel, (255, 255, 255), condense=0.8)
    p, c = plain[..., 0], condensed[..., 0]
    # squeezing a square glyph to half its width halves its vertical strokes; condensing
    # widens them back
    assert _row_runs(c) > 1.4 * _row_runs(p)
    assert (c > 127).any(axis=0).sum() <= 45  # still inside its box


def test_the_oblique_face_is_set_upright() -> None:
    rel = "smiley-sans/SmileySans-Oblique.ttf"
    g = render._glyph("1", rel) > 127  # a plain vertical stem in the upright design
    rows = g.nonzero()[0]
    top, bottom = g[rows.min() + 5], g[rows.max() - 5]
    lean = bottom.nonzero()[0].mean() - top.nonzero()[0].mean()
    assert abs(lean) < 0.1 * g.shape[0]


def test_snug_crops_keep_the_plate_filling_the_crop() -> None:
    rng = random.Random(5)
    plate = render.render_us(rng)
    ph, pw = plate.image.shape[:2]
    for _ in range(10):
        crop = render.place(rng, plate, tight=0.15, snug=1.0)
        h, w = crop.shape[:2]
        assert 0.85 * pw < w < 1.2 * pw and 0.75 * ph < h < 1.35 * ph


def test_plate_frames_surround_the_plate_and_leave_it_whole() -> None:
    rng = random.Random(8)
    plate = render.render_us(rng)
    ph, pw = plate.image.shape[:2]
    for _ in range(10):
        framed, ox, oy = render._framed(rng, plate.image)
        fh, fw = framed.shape[:2]
        assert fw > pw and fh > ph and ox > 0 and oy > 0
        assert ox + pw < fw and oy + ph < fh  # a strip on every side
        # the text rows (a quarter to three quarters of the height) are the plate's own
        rows = slice(oy + ph // 4, oy + 3 * ph // 4)
        assert np.array_equal(framed[rows, ox : ox + pw], plate.image[ph // 4 : 3 * ph // 4])
    # a framed placement still crops around the plate, with the frame in the margins
    crops = [render.place(rng, plate, tight=0.15, snug=0.0, frame=1.0) for _ in range(10)]
    assert all(0.9 * pw < c.shape[1] < 1.4 * pw for c in crops)


def test_the_background_painted_in_a_window_is_that_window_of_the_whole() -> None:
    # place() paints only the part of the backdrop that its crop keeps; that part must be
    # the pixels the whole canvas would have there, bumper blocks included
    rng = random.Random(4)
    for _ in range(20):
        bg = render._Background(rng, 300, 450)
        render._mounting(rng, bg)
        assert bg.rects
        whole = bg.paint(0, 300, 0, 450)
        assert whole.std() > 0
        y0, x0 = rng.randint(0, 150), rng.randint(0, 200)
        y1, x1 = rng.randint(y0 + 1, 300), rng.randint(x0 + 1, 450)
        assert np.array_equal(bg.paint(y0, y1, x0, x1), whole[y0:y1, x0:x1])


@pytest.mark.parametrize("kind", sorted(set(render.PICTOGRAMS)))
def test_pictograms_draw_inside_their_slot_and_leave_the_rest(kind: str) -> None:
    rng = random.Random(kind)
    for _ in range(5):
        img = np.full((150, 300, 3), 230, np.uint8)
        x, y, w, h = 40, 40, rng.randint(30, 70), 70
        render._pictogram(rng, img, (x, y, w, h), (20, 30, 140), kind=kind)
        ink = np.argwhere((img != 230).any(axis=2))
        assert len(ink) > 0.08 * w * h, f"{kind}: too little drawn"
        # at most a quarter taller than the text row, and within its width (plus strokes)
        (y0, x0), (y1, x1) = ink.min(axis=0), ink.max(axis=0)
        assert y0 >= y - 0.15 * h - 2 and y1 <= y + h + 0.15 * h + 2, (kind, y0, y1)
        assert x0 >= x - 0.25 * w - 2 and x1 <= x + w + 0.25 * w + 2, (kind, x0, x1)


def test_us_plates_carry_pictograms_their_labels_leave_out() -> None:
    drawn: list[str] = []
    real = render._pictogram

    def spy(rng, img, box, col, kind=None):  # type: ignore[no-untyped-def]
        drawn.append("picto")
        real(rng, img, box, col, kind)

    rng = random.Random(3)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(render, "_pictogram", spy)
        plates = [render.render_us(rng) for _ in range(200)]
    assert 10 <= len(drawn) <= 120  # some plates have one, most do not
    for plate in plates:
        assert any(f.matches(plate.text) for f in COUNTRY_FORMATS["us"]), plate.text


def test_pictograms_stand_between_the_characters_never_past_the_ends() -> None:
    # a pictogram beside the text's first or last character taught the model to drop it
    glyphs: list[tuple[int, int, int, int]] = []
    pictos: list[tuple[int, int, int, int]] = []
    real_glyph, real_picto = render.draw_glyph, render._pictogram

    def glyph_spy(img, ch, box, *args, **kwargs):  # type: ignore[no-untyped-def]
        glyphs.append(box)
        real_glyph(img, ch, box, *args, **kwargs)

    def picto_spy(rng, img, box, col, kind=None):  # type: ignore[no-untyped-def]
        pictos.append(box)
        real_picto(rng, img, box, col, kind)

    rng = random.Random(11)
    seen = 0
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(render, "draw_glyph", glyph_spy)
        mp.setattr(render, "_pictogram", picto_spy)
        for _ in range(300):
            glyphs.clear()
            pictos.clear()
            render.render_us(rng)
            for px, py, pw, ph in pictos:
                # the plate's own characters share the pictogram's row and height
                row = [g for g in glyphs if g[1] == py and g[3] == ph]
                assert row, "a pictogram drawn with no characters beside it"
                first = min(g[0] for g in row)
                last = max(g[0] + g[2] for g in row)
                assert first < px + pw // 2 < last
                seen += 1
    assert seen >= 10  # the check ran on real pictograms


def test_a_frame_covers_only_part_of_the_edge_character() -> None:
    rng = random.Random(5)
    sides = set()
    for _ in range(40):
        img = np.full((150, 300, 3), 230, np.uint8)
        x0, x1, ch_w = 60, 240, 30  # the text's first and last columns, a character's width
        render._edge_cover(rng, img, "ABC123X", x0, x1, ch_w)
        covered = np.flatnonzero((img[75] != 230).any(axis=1))
        if len(covered) == 0:  # a bar as light as the plate is possible, but not twice
            continue
        left = covered[0] < x0
        sides.add(left)
        if left:  # into the first character by 10-35 % of its box, never further
            assert x0 + 0.10 * ch_w - 1 <= covered[-1] <= x0 + 0.35 * ch_w + 1
        else:
            assert x1 - 0.35 * ch_w - 1 <= covered[0] <= x1 - 0.10 * ch_w + 1
        assert (covered[-1] - covered[0] + 1) == len(covered)  # one solid bar
        assert ((img[:, covered[0]] != 230).any(axis=1)).all()  # the plate's full height
    assert sides == {True, False}
    # a narrow edge glyph (1, I) is left whole: the label must stay readable
    for label in ("1ABC23", "ABC23I"):
        img = np.full((150, 300, 3), 230, np.uint8)
        for _ in range(10):
            render._edge_cover(rng, img, label, 60, 240, 30)
        side = slice(0, 70) if label[0] == "1" else slice(230, 300)
        assert (img[:, side] == 230).all(), label


def test_edge_cut_crops_cut_into_a_side_of_the_plate() -> None:
    plate = render.render_cn(random.Random(5), "blue", "皖A12345")
    for seed in range(8):
        plain = render.place(random.Random(seed), plate, tight=0.08, snug=1.0)
        cut = render.place(random.Random(seed), plate, tight=0.08, snug=1.0, edge_cut=1.0)
        # the same draws up to the margins; the cut side then lies 3-5.5 % inside the plate
        assert cut.shape[0] == plain.shape[0]
        assert plain.shape[1] - cut.shape[1] >= 0.005 * plate.image.shape[1] - 1, seed
    # at 0 the option draws nothing (the samples are those of before it); on, it draws
    off, on = random.Random(11), random.Random(11)
    render.place(off, plate, tight=0.08, snug=1.0, edge_cut=0.0)
    render.place(on, plate, tight=0.08, snug=1.0, edge_cut=1e-9)
    assert off.getstate() != on.getstate()


def test_sheared_plates_lean_and_shear_off_draws_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    plate = render.render_cn(random.Random(5), "blue", "皖A12345")
    quads: list[np.ndarray] = []
    transform = render.cv2.getPerspectiveTransform

    def spy(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        quads.append(dst.copy())
        return transform(src, dst)

    monkeypatch.setattr(render.cv2, "getPerspectiveTransform", spy)

    def median_lean(shear: float) -> float:
        """How far the plate's sides lean (x per y), the median over 40 placements."""
        quads.clear()
        for seed in range(40):
            render.place(random.Random(seed), plate, tight=0.08, snug=1.0, shear=shear)
        return float(
            np.median(
                [
                    abs((q[0, 0] - q[3, 0]) / (q[3, 1] - q[0, 1]))
                    + abs((q[1, 0] - q[2, 0]) / (q[2, 1] - q[1, 1]))
                    for q in quads
                ]
            )
            / 2
        )

    # rotation and perspective jitter alone lean a snug crop's plate a little
    assert median_lean(0.0) < 0.1
    assert median_lean(1.0) > 0.2
    off, on = random.Random(11), random.Random(11)
    render.place(off, plate, tight=0.08, snug=1.0, shear=0.0)
    render.place(on, plate, tight=0.08, snug=1.0, shear=1e-9)
    assert off.getstate() != on.getstate()


def test_level_cut_crops_are_cut_to_the_turned_plates_own_height() -> None:
    plate = render.render_cn(random.Random(5), "blue", "皖A12345")
    aspect = plate.image.shape[0] / plate.image.shape[1]

    def median_aspect(level_cut: float) -> float:
        shapes = [
            render.place(random.Random(s), plate, tight=0.08, snug=1.0, level_cut=level_cut).shape
            for s in range(30)
        ]
        return float(np.median([h / w for h, w, _ in shapes]))

    # a turned plate's own box is taller than the plate; cut level, the crop is not
    # (measured 0.334 and 0.287 against the plate's 0.318)
    assert median_aspect(0.0) > aspect > median_aspect(1.0) + 0.02
    off, on = random.Random(11), random.Random(11)
    render.place(off, plate, tight=0.08, snug=1.0, level_cut=0.0)
    render.place(on, plate, tight=0.08, snug=1.0, level_cut=1e-9)
    assert off.getstate() != on.getstate()


def test_california_plates_have_its_serial_colours_and_glyphs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drawn: list[str] = []
    glyph = render.draw_glyph

    def spy(canvas: np.ndarray, ch: str, box: tuple[int, int, int, int], rel: str, *a: Any) -> None:
        if box[3] >= 55:  # the plate's characters (0.4-0.6 of its 150 px), not a mark's
            drawn.append(f"{ch}:{rel}")
        glyph(canvas, ch, box, rel, *a)

    monkeypatch.setattr(render, "draw_glyph", spy)
    for seed in range(6):
        drawn.clear()
        plate = render.render_us(random.Random(seed), "4WME123", california=1.0)
        assert plate.text == "4WME123"
        # the upright open 4 and the stroke W and M of the state's plate gothic
        four = int(drawn[0].split(":open4")[1])
        assert drawn[0].startswith("4:open4") and four >= render.OPEN4_STYLES // 2
        w_style = int(drawn[1].split(":stroke")[1])
        assert drawn[1].startswith("W:stroke") and w_style >= render.STROKE_STYLES
        assert drawn[2].startswith("M:stroke")
        assert drawn[3].split(":")[1] in render.CA_FONTS
        # white plate, red name at the top, dark blue characters
        img = plate.image.astype(int)
        assert img[140, 150].min() >= 200 or img[75, 5].min() >= 200
        red = (img[:, :, 2] > 150) & (img[:, :, 1] < 80) & (img[:, :, 0] < 80)
        assert red[:45].sum() > 50 and red[45:].sum() < red[:45].sum()
    serials = {render.render_us(random.Random(s), california=1.0).text for s in range(20)}
    assert all(re.fullmatch(r"[0-9][A-Z]{3}[0-9]{3}", t) for t in serials) and len(serials) == 20
    # at 0 the option draws nothing: the samples are those of before it
    off, on = random.Random(3), random.Random(3)
    render.render_us(off)
    render.render_us(on, california=0.0)
    assert off.getstate() == on.getstate()
    some = [render.sample(random.Random(s), 0.0, california=0.5)[1] for s in range(40)]
    assert 5 < sum(bool(re.fullmatch(r"[0-9][A-Z]{3}[0-9]{3}", t)) for t in some) < 35


def test_vanity_words_are_plate_text_with_vowels_and_some_digits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Vanity plates spell words: 4-8 characters of the US alphabet, letters in syllables
    (a vowel among every few letters), now and then a look-alike digit. Drawn from the
    seed alone; some US samples are such words."""
    words = [render.vanity_word(random.Random(11)) for _ in range(2)]
    assert words[0] == words[1]
    rng = random.Random(11)
    words = [render.vanity_word(rng) for _ in range(400)]
    assert all(4 <= len(w) <= 8 and w.isascii() and w.isalnum() and w == w.upper() for w in words)
    letters = "".join(c for w in words for c in w if c.isalpha())
    vowels = sum(c in render.VOWELS for c in letters)
    assert 0.3 < vowels / len(letters) < 0.6
    with_digit = sum(any(c.isdigit() for c in w) for w in words)
    assert 0.1 * len(words) < with_digit < 0.7 * len(words)
    monkeypatch.setattr(render, "vanity_word", lambda rng: "VANITY")
    texts = [render.random_us_text(random.Random(s)) for s in range(300)]
    assert 10 < texts.count("VANITY") < 100


def test_us_serials_draw_o_rarely_and_i_q_less_often_than_other_letters() -> None:
    counts = {c: render.US_LETTERS.count(c) for c in "AOIQZ"}
    assert counts == {"A": 8, "O": 1, "I": 3, "Q": 3, "Z": 8}


def test_the_renderer_draws_the_committed_reference_plates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``python -m training.reference_plates`` makes files the models read as the committed
    self-test plates (``agent/plates/reference``; its pixels follow the fonts installed, so
    they are compared by reading)."""
    from agent.plates import reference
    from agent.plates.config import PlatesConfig
    from agent.plates.reader import PlateReader
    from training.reference_plates import draw

    written = draw(tmp_path)
    assert [p.name for p in written] == [p.file for p in reference.REFERENCE_PLATES]
    monkeypatch.setattr(reference, "REFERENCE_DIR", tmp_path)
    reader = PlateReader.from_config(PlatesConfig())
    assert all(r.right for r in reference.read_references(reader, ["cn", "us"]))
