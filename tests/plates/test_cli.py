"""``outpost plates read`` as a field tech runs it: the box's config file, its watchlist,
still images and a configured camera (the toll-booth video as a file, and served as RTSP).

Everything goes through ``agent.cli.main`` (``outpost -c FILE plates read …``), so the
config file is found and passed as on a box.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import pytest

from agent import cli
from tests.conftest import shared_path
from tests.vision.conftest import ssd_model_dir
from tests.vision.rtsp_relay import RtspRelay

WATCHED = "34A36837"
"""The first car at the booth (the data README names it), read in the video's first frames."""


def _config(
    tmp_path: Path, extra: str = "", cameras: str = "", roi: str = "[0, 120, 1280, 600]"
) -> Path:
    state = tmp_path / "state"
    state.mkdir(parents=True, exist_ok=True)
    entry = {"plate": WATCHED, "reason": "stolen", "id": "w-1"}
    (state / "plates-watchlist.json").write_text(json.dumps({"updated": "", "entries": [entry]}))
    cfg = tmp_path / "outpost.toml"
    cfg.write_text(
        f"""
[device]
id = "gate-box"
site = "t/city/county"
state_dir = "{state}"

[mqtt]
urls = ["mqtt://127.0.0.1:1"]

[plates]
roi = {roi}
{extra}
{cameras}
"""
    )
    return cfg


def _booth_camera(source: str, detect: bool = False) -> str:
    """The booth camera: a fixed lane camera reading its ROI, or (``detect``) the detector's
    vehicle boxes."""
    return f"""
[[vision.cameras]]
name = "booth"
{source}
plates = true
detect = {str(detect).lower()}
"""


@pytest.fixture(scope="module")
def booth_frame(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A frame of the toll-booth video in which the first car's plate reads whole."""
    video = shared_path("data", "video", "tollbooth_720p.mp4")
    cap = cv2.VideoCapture(str(video))
    ok, frame = False, None
    for _ in range(9):  # the ninth frame: the plate is whole and near the booth
        ok, frame = cap.read()
    cap.release()
    assert ok and frame is not None
    path = tmp_path_factory.mktemp("booth") / "booth.png"
    cv2.imwrite(str(path), frame)
    return path


def _json_lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_an_image_is_read_with_the_box_settings_and_matched_against_its_watchlist(
    tmp_path: Path, booth_frame: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(tmp_path)
    assert cli.main(["-c", str(cfg), "plates", "read", "--json", str(booth_frame)]) == 0
    captured = capsys.readouterr()
    assert f"settings from {cfg}" in captured.err
    (line,) = _json_lines(captured.out)
    plates = line["plates"]
    assert isinstance(plates, list) and plates, line
    assert plates[0]["text"] == WATCHED
    watch = {"plate": WATCHED, "reason": "stolen", "id": "w-1", "distance": 0.0}
    assert plates[0]["watch"] == watch

    # the config's [plates] section is what reads: an ROI above the cars (the booth's
    # clock is there) reads no plate of a car
    high = _config(tmp_path / "high", roi="[0, 0, 1280, 100]")
    assert cli.main(["-c", str(high), "plates", "read", "--json", str(booth_frame)]) == 0
    (line,) = _json_lines(capsys.readouterr().out)
    plates = line["plates"]
    assert isinstance(plates, list)
    assert all(p["box"][1] + p["box"][3] <= 100 and "watch" not in p for p in plates), plates


def test_the_box_settings_can_turn_plates_reading_to_a_model_that_is_not_there(
    tmp_path: Path, booth_frame: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(tmp_path, extra='[plates.ocr]\nmodel = ["outpost-plate-ocr-nowhere"]')
    assert cli.main(["-c", str(cfg), "plates", "read", str(booth_frame)]) == 2
    assert "outpost-plate-ocr-nowhere" in capsys.readouterr().err


def test_a_file_camera_is_read_frame_by_frame_and_the_watched_car_is_a_hit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video = shared_path("data", "video", "tollbooth_720p.mp4")
    cfg = _config(tmp_path, cameras=_booth_camera(f'path = "{video}"'))
    argv = ["-c", str(cfg), "plates", "read", "--camera", "booth", "--frames", "4", "--every", "4"]
    assert cli.main([*argv, "--json"]) == 0
    lines = _json_lines(capsys.readouterr().out)
    assert [x["frame"] for x in lines] == [0, 4, 8, 12]
    assert all(x["camera"] == "booth" for x in lines)
    hits = [p for x in lines for p in x["plates"] if "watch" in p]  # type: ignore[attr-defined]
    assert hits and all(p["watch"]["plate"] == WATCHED for p in hits)

    assert cli.main(argv) == 0  # the words a field tech reads: a line a frame, then a summary
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("booth#0: ") and f"HIT {WATCHED}, stolen" in "\n".join(out)
    assert out[-1].startswith("booth: 4 frames read, every 4, ROI: ")


def test_an_rtsp_camera_is_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed (apt-get install -y ffmpeg)")
    video = shared_path("data", "video", "tollbooth_720p.mp4")
    relay = RtspRelay(video)
    try:
        cfg = _config(tmp_path, cameras=_booth_camera(f'kind = "rtsp"\nurl = "{relay.url}"'))
        argv = ["-c", str(cfg), "plates", "read", "--camera", "booth", "--frames", "3", "--json"]
        assert cli.main(argv) == 0
    finally:
        relay.close()
    lines = _json_lines(capsys.readouterr().out)
    assert len(lines) == 3 and all(isinstance(x["plates"], list) for x in lines)
    assert relay.sessions >= 1


def test_bad_requests_are_refused_with_the_reason(
    tmp_path: Path, booth_frame: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(tmp_path)
    read = ["-c", str(cfg), "plates", "read"]
    assert cli.main(read) == 2  # neither images nor a camera
    assert "IMAGE... or --camera" in capsys.readouterr().err
    assert cli.main([*read, "--camera", "gate"]) == 2
    assert "no camera 'gate'" in capsys.readouterr().err
    assert cli.main([*read, "--countries", "xx", str(booth_frame)]) == 2
    assert "countries" in capsys.readouterr().err
    # a config file named on purpose must be there: the usual exit for a bad config
    missing = tmp_path / "nowhere.toml"
    assert cli.main(["-c", str(missing), "plates", "read", str(booth_frame)]) == 78
    assert str(missing) in capsys.readouterr().err


def test_without_a_config_file_a_camera_cannot_be_named(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from agent.plates import cli as plates_cli

    assert plates_cli.main(["read", "--camera", "booth"]) == 78
    assert "--camera needs the box's config file" in capsys.readouterr().err


def test_the_simulated_camera_is_read_from_the_workers_clip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file camera without a path is the simulated profile's: the CLI reads the clip the
    vision worker makes in the state dir (making it where the worker has not yet)."""
    cfg = _config(tmp_path, cameras=_booth_camera("analysis_fps = 5"))
    argv = ["-c", str(cfg), "plates", "read", "--camera", "booth", "--frames", "2", "--json"]
    assert cli.main(argv) == 0
    assert [x["frame"] for x in _json_lines(capsys.readouterr().out)] == [0, 2]
    assert (tmp_path / "state" / "vision" / "synthetic.mp4").is_file()


def test_a_camera_that_cannot_be_opened_is_named_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.fixtures.broker import free_port

    url = f"rtsp://127.0.0.1:{free_port()}/cam"  # nothing listens there
    cfg = _config(tmp_path, cameras=_booth_camera(f'kind = "rtsp"\nurl = "{url}"'))
    assert cli.main(["-c", str(cfg), "plates", "read", "--camera", "booth"]) == 1
    assert "camera booth: cannot open" in capsys.readouterr().err


def test_a_camera_with_the_detector_is_read_in_its_vehicle_boxes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As the daemon searches such a camera: COCO SSD's car, truck, bus and motorcycle boxes,
    nothing where no vehicle is; a detector model that is not there is named."""
    video = shared_path("data", "video", "tollbooth_720p.mp4")
    models = ssd_model_dir(tmp_path / "detector")
    camera = _booth_camera(f'path = "{video}"', detect=True)
    cfg = _config(tmp_path, cameras=f'[vision.detector]\nmodel_dir = "{models}"\n{camera}')
    argv = ["-c", str(cfg), "plates", "read", "--camera", "booth", "--frames", "3", "--every", "4"]
    assert cli.main([*argv, "--json"]) == 0
    lines = _json_lines(capsys.readouterr().out)
    assert [x["frame"] for x in lines] == [4 * i for i in range(3)]
    assert all(isinstance(x["vehicles"], int) for x in lines)
    for x in lines:
        if x["vehicles"] == 0:
            assert x["plates"] == []
    hits = [p for x in lines for p in x["plates"] if "watch" in p]  # type: ignore[attr-defined]
    assert hits, lines  # the first car is in a vehicle box and its plate is read there

    missing = _config(tmp_path / "nodet", cameras=camera)  # the detector's model_dir: empty
    assert cli.main(["-c", str(missing), "plates", "read", "--camera", "booth"]) == 1
    assert "--no-detector" in capsys.readouterr().err
    argv = ["-c", str(missing), "plates", "read", "--camera", "booth", "--no-detector"]
    assert cli.main([*argv, "--frames", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("booth: 1 frames read, every")
