"""docs/asyncapi.yaml must list every event type the code emits and every command it registers.

The types and names are collected from the source, not from a list kept here, so a new
``emit("x.y", …)`` or ``commands.register("z", …)`` fails this test until the document has it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "asyncapi.yaml"
SOURCES = [ROOT / "agent", ROOT / "drivers", ROOT / "provisioning"]

# sink.emit("type", …) — the plain form.
EMIT = re.compile(r'emit\(\s*"([a-z0-9_.]+)"')
# self._emit(source, "type", …) — gpio's wrapper takes the source first.
EMIT_WITH_SOURCE = re.compile(r'_emit\(\s*[\w.]+,\s*"([a-z0-9_.]+)"')
# self._emit("a.b" if cond else "a.c", …) — vision's camera online/offline.
EMIT_CHOICE = re.compile(r'emit\(\s*"([a-z0-9_.]+)"\s+if\s[^,]*?\selse\s+"([a-z0-9_.]+)"')
# {"type": "patrol.tap", "data": …} — patrol journals events, then emits ev["type"].
JOURNALLED = re.compile(r'\{\s*"type":\s*"([a-z0-9_.]+)",\s*"data"')
# self._media_event(ref, …, kind="clip") — vision emits f"media.{kind}", default snapshot.
MEDIA_KIND = re.compile(r'_media_event\([^()]*(?:\([^()]*\)[^()]*)*kind="([a-z]+)"', re.S)
REGISTER = re.compile(r'commands\.register\(\s*"([a-z0-9_-]+)"')


def _sources() -> list[tuple[Path, str]]:
    return [(p, p.read_text(encoding="utf-8")) for base in SOURCES for p in base.rglob("*.py")]


def emitted_types() -> set[str]:
    types: set[str] = set()
    for _path, text in _sources():
        types.update(EMIT.findall(text))
        types.update(EMIT_WITH_SOURCE.findall(text))
        for a, b in EMIT_CHOICE.findall(text):
            types.update((a, b))
        if 'emit(ev["type"]' in text:
            types.update(JOURNALLED.findall(text))
        if "_media_event(" in text and 'f"media.{kind}"' in text:
            types.add("media.snapshot")  # the default kind
            types.update(f"media.{k}" for k in MEDIA_KIND.findall(text))
        if 'f"alarm.{action.kind.value}"' in text:
            from drivers.gpio.press import AlarmKind

            types.update(f"alarm.{k.value}" for k in AlarmKind)
    return types


def registered_commands() -> set[str]:
    names: set[str] = set()
    for _path, text in _sources():
        names.update(REGISTER.findall(text))
    return names


@pytest.fixture(scope="module")
def doc() -> dict:
    data = yaml.safe_load(DOC.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _addresses(doc: dict) -> list[str]:
    return [str(ch.get("address", "")) for ch in doc["channels"].values()]


def _resolve(doc: dict, ref: str) -> object:
    node: object = doc
    for part in ref.removeprefix("#/").split("/"):
        assert isinstance(node, dict), ref
        node = node[part]
    return node


def test_document_is_asyncapi_3(doc: dict) -> None:
    assert str(doc["asyncapi"]).startswith("3.")
    for key in ("info", "servers", "channels", "operations", "components"):
        assert key in doc


def test_every_ref_resolves(doc: dict) -> None:
    def walk(node: object) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "$ref":
                    _resolve(doc, v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(doc)


def test_collection_finds_the_known_types() -> None:
    # Guard against the regexes silently matching nothing after a refactor.
    found = emitted_types()
    for t in ("alarm.panic", "alarm.duress", "device.tamper", "patrol.tap", "patrol.missed",
              "camera.online", "camera.offline", "media.snapshot", "media.clip", "plate.hit",
              "device.health"):
        assert t in found, t
    assert {"alarm-ack", "patrol-config", "watchlist", "snapshot"} <= registered_commands()


@pytest.mark.parametrize("event_type", sorted(emitted_types()))
def test_event_type_documented(doc: dict, event_type: str) -> None:
    if event_type == "device.health":
        suffix = "/health"
    else:
        suffix = "/event/" + event_type.replace(".", "/")
    assert any(a.endswith(suffix) for a in _addresses(doc)), f"no channel for {event_type}"
    names = {m.get("name") for m in doc["components"]["messages"].values()}
    assert event_type in names, f"no message named {event_type}"


@pytest.mark.parametrize("command", sorted(registered_commands()))
def test_command_documented(doc: dict, command: str) -> None:
    assert any(a.endswith(f"/cmd/{command}") for a in _addresses(doc)), f"no channel for {command}"
    enum = doc["components"]["parameters"]["command"]["enum"]
    assert command in enum, f"{command} missing from the command parameter"


def test_every_channel_has_an_operation(doc: dict) -> None:
    used = {op["channel"]["$ref"].rsplit("/", 1)[-1] for op in doc["operations"].values()}
    assert set(doc["channels"]) == used
