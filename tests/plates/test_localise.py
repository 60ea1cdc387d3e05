"""The classical localiser: plate-shaped candidates, and rows of text joined."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent.plates import localise
from agent.plates.localise import find_plates

DEV = Path(__file__).resolve().parents[3] / "shared" / "data" / "plates-dev" / "openalpr-us-scenes"
needs_dev = pytest.mark.skipif(not DEV.is_dir(), reason="../shared/data/plates-dev is absent")


def test_blobs_in_one_row_are_joined_and_others_are_not() -> None:
    group = ((100, 200, 60, 40), 1500.0)
    joined = localise._row_unions(
        [
            group,
            ((190, 205, 90, 38), 2000.0),  # the same row, a 30 px gap: joined
            ((100, 300, 90, 40), 2000.0),  # the row below
            ((400, 200, 90, 40), 2000.0),  # the same row, 150 px off: too far
            ((170, 180, 90, 80), 2000.0),  # twice the height: not the same text
        ]
    )
    assert joined == [((100, 200, 180, 43), 3500.0)]
    # an overlap of under 70 % of the lower blob's height is another line of text
    assert localise._row_unions([group, ((170, 215, 60, 40), 1.0)]) == []
    assert localise._row_unions([group, ((170, 210, 60, 40), 1.0)]) != []


def _scene(name: str) -> np.ndarray:
    import cv2

    return cv2.imdecode(np.fromfile(str(DEV / name), np.uint8), cv2.IMREAD_COLOR)


def _labelled(label: Path) -> tuple[str, tuple[int, int, int, int]]:
    """An OpenALPR scene label (``NAME.txt``): the image's name and the plate's box."""
    name, x, y, w, h = label.read_text().split("\t")[:5]
    return name, (int(x), int(y), int(w), int(h))


@needs_dev
@pytest.mark.parametrize(
    ("name", "first", "last"),
    [("us7.jpg", (367, 489), (513, 618)), ("us8.jpg", (376, 437), (458, 616))],
)
def test_a_close_plates_character_groups_are_also_one_candidate(
    name: str, first: tuple[int, int], last: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Close to the camera (`5VCF 203`, `EAZ 6913`; the groups' x-ranges in the frame) the
    groups are blobs of their own; the row they make is a candidate too."""
    image = _scene(name)

    def spans_both(cands: list[localise.Candidate]) -> bool:
        return any(
            x <= first[0] + 10 and x + w >= last[1] - 10 and x + w <= last[1] + 60
            for x, _, w, _ in (c.box for c in cands)
        )

    assert spans_both(find_plates(image))
    # (the locally normalised search also finds `EAZ 6913` whole: off for the counterfactual)
    monkeypatch.setattr(localise, "LOCAL_EXTRA", 0)
    assert spans_both(find_plates(image))
    monkeypatch.setattr(localise, "MAX_UNIONS", 0)
    assert not spans_both(find_plates(image))


def _plate_on_a_bumper() -> tuple[np.ndarray, tuple[int, int, int, int], tuple[int, int, int, int]]:
    """A dark bumper with a light plate on it: (image, a loose box over plate and bumper,
    the extent of the plate's characters)."""
    import cv2

    image = np.full((300, 700, 3), 40, np.uint8)
    cv2.rectangle(image, (60, 110), (640, 210), (90, 90, 90), -1)  # bumper
    cv2.rectangle(image, (220, 120), (480, 200), (225, 225, 225), -1)  # plate
    cv2.putText(image, "7ABC123", (242, 178), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (20, 20, 20), 4)
    gray = cv2.cvtColor(image[120:201, 220:481], cv2.COLOR_BGR2GRAY)
    ys, xs = np.nonzero(gray < 100)
    text = (220 + int(xs.min()), 120 + int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1)
    return image, (80, 125, 540, 75), text


def test_a_loose_box_is_cut_to_the_characters_in_it() -> None:
    image, loose, (tx, ty, tw, th) = _plate_on_a_bumper()
    box = localise.text_box(image, loose)
    assert box is not None
    x, y, w, h = box
    # every character inside, and no more than the padding beside them (0.7 and 0.3 of a
    # character's height)
    assert x <= tx and x + w >= tx + tw and y <= ty and y + h >= ty + th
    assert tx - x <= 0.8 * th and (x + w) - (tx + tw) <= 0.8 * th
    assert ty - y <= 0.4 * th and (y + h) - (ty + th) <= 0.4 * th
    assert localise.iou(box, loose) < 0.5


def test_a_box_without_a_row_of_characters_has_no_text_box() -> None:
    rng = np.random.default_rng(1)
    flat = np.full((100, 300, 3), 128, np.uint8)
    assert localise.text_box(flat, (20, 20, 200, 50)) is None
    noise = rng.integers(0, 255, (100, 300, 3), dtype=np.uint8)
    assert localise.text_box(noise, (20, 20, 200, 50)) is None


def test_find_plates_offers_the_text_box_beside_its_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    image, _, _ = _plate_on_a_bumper()
    cands = find_plates(image)
    inner = [c for c in cands if c.parent is not None]
    assert inner and all(c.found == c.parent for c in inner)
    for c in inner:
        assert any(k.box == c.parent and k.parent is None for k in cands)
        assert c.parent is not None and c.box == localise.text_box(image, c.parent)
    monkeypatch.setattr(localise, "TEXT_BOX_NEW", 0.0)
    assert all(c.parent is None for c in find_plates(image))


def _dim_plate_beside_a_grille() -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A frame with a sunlit grille (stripes of full contrast) and, away from it, a plate
    whose characters are only 40 grey levels off its ground: (image, the characters' box)."""
    import cv2

    image = np.full((720, 1280, 3), 120, np.uint8)
    for x in range(100, 700, 14):
        cv2.rectangle(image, (x, 150), (x + 6, 260), (255, 255, 255), -1)
        cv2.rectangle(image, (x + 7, 150), (x + 13, 260), (0, 0, 0), -1)
    cv2.rectangle(image, (850, 500), (1010, 580), (140, 140, 140), -1)
    cv2.putText(image, "7ABC123", (862, 555), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (100, 100, 100), 3)
    ys, xs = np.nonzero(image[500:581, 850:1011, 0] < 120)
    x, y = 850 + int(xs.min()), 500 + int(ys.min())
    return image, (x, y, int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1)


def test_a_dim_plate_is_found_beside_strong_edges(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scaled by the frame's strongest edge the plate's strokes fall under the threshold;
    scaled by its neighbourhood's they are one of the added candidates."""
    image, text = _dim_plate_beside_a_grille()
    cands = find_plates(image)
    assert max(localise.iou(c.box, text) for c in cands) >= 0.5
    assert all(c.second for c in cands if localise.iou(c.box, text) >= 0.5)
    assert sum(c.parent is None for c in cands) <= 1 + localise.LOCAL_EXTRA + localise.MAX_UNIONS
    assert max((localise.iou(c.box, text) for c in find_plates(image, extra=0)), default=0) < 0.1
    monkeypatch.setattr(localise, "LOCAL_EXTRA", 0)
    assert max((localise.iou(c.box, text) for c in find_plates(image)), default=0) < 0.1


@needs_dev
@pytest.mark.parametrize("name", ["wts-lg-000013.jpg", "wts-lg-000115.jpg"])
def test_dev_plates_that_only_the_local_search_finds(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Washed-out plates on sunlit cars (`DH5X9P`, `HH9G5W`): no candidate of the first
    search overlaps them; one of the locally normalised search's does."""
    _, plate = _labelled((DEV / name).with_suffix(".txt"))
    image = _scene(name)
    assert max(localise.iou(c.box, plate) for c in find_plates(image)) >= 0.5
    monkeypatch.setattr(localise, "LOCAL_EXTRA", 0)
    assert max((localise.iou(c.box, plate) for c in find_plates(image)), default=0) < 0.3


@needs_dev
def test_text_boxes_find_the_dev_plates_more_closely() -> None:
    """Of the first 80 dev US scenes, those where a candidate overlaps the labelled plate by
    IoU 0.5 or more: with text boxes, more (measured on all 222: 83.3 -> 94.1 %)."""
    closer = found = 0
    for label in sorted(DEV.glob("*.txt"))[:80]:
        name, plate = _labelled(label)
        cands = find_plates(_scene(name))
        before = max((localise.iou(c.box, plate) for c in cands if c.parent is None), default=0)
        after = max((localise.iou(c.box, plate) for c in cands), default=0)
        closer += before < 0.5 <= after
        found += after >= 0.5
    assert found >= 72 and closer >= 6, (found, closer)
