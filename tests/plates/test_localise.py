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
    monkeypatch.setattr(localise, "MAX_UNIONS", 0)
    assert not spans_both(find_plates(image))
