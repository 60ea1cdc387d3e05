"""The route scenario shared by the patrol tests: a five-stop ordered night round."""

from __future__ import annotations

from datetime import UTC, datetime

T0 = datetime(2026, 11, 24, 22, 0, tzinfo=UTC).timestamp()  # a Tuesday
MIN = 60.0

PLAN = {
    "version": 7,
    "roster": [
        {"id": "o-17", "name": "Li Wei", "tags": ["em4100:62E3086CED"]},
        {"id": "o-18", "name": "Zhang Min", "tags": ["w26:090,00324", "uid:04A1B2C3D4E5F6"]},
    ],
    "checkpoints": {"north": "A"},
    "routes": [
        {
            "id": "night",
            "name": "Night round",
            "ordered": True,
            "early_min": 2,
            "late_min": 2,
            "window_min": 8,
            "stops": [
                {"checkpoint": "A", "at_min": 0},
                {"checkpoint": "B", "at_min": 10},
                {"checkpoint": "C", "at_min": 20},
                {"checkpoint": "D", "at_min": 30},
                {"checkpoint": "E", "at_min": 40},
            ],
            "schedule": {"times": ["22:00"], "days": ["tue"]},
        }
    ],
}
