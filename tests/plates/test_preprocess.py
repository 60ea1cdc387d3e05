"""Crop preparation: how far a crop's characters lean, and standing them upright."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from agent.plates.preprocess import lean, upright


def _plate(width: int = 188, height: int = 48) -> np.ndarray:
    """White characters on a blue plate, upright (vertical strokes: 1, 4, H, M)."""
    img = np.full((height, width, 3), (160, 60, 20), np.uint8)
    cv2.putText(img, "H14M71", (8, height - 10), cv2.FONT_HERSHEY_SIMPLEX, 1.3, (255, 255, 255), 3)
    return img


def test_an_upright_plate_does_not_lean() -> None:
    assert abs(lean(_plate())) < 0.06
    # nothing to line up: a blank crop, gray or colour, does not lean either
    assert lean(np.full((24, 94), 90, np.uint8)) == 0.0
    assert lean(np.full((24, 94, 3), 90, np.uint8)) == 0.0


@pytest.mark.parametrize("by", [-0.35, -0.2, 0.2, 0.35])
@pytest.mark.parametrize("size", [(188, 48), (94, 24), (300, 60)])
def test_a_sheared_plate_leans_by_its_shear_and_stands_upright_again(
    by: float, size: tuple[int, int]
) -> None:
    plate = _plate(*size)
    leaning = upright(plate, -by)  # shear it the other way: its characters lean by ``by``
    found = lean(leaning)
    assert found == pytest.approx(by, abs=0.08)
    stood = upright(leaning, found)
    assert stood.shape == plate.shape
    assert abs(lean(stood)) < 0.08
