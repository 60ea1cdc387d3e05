"""Writing ``/etc/outpost/outpost.toml``: merge requested changes, validate, diff, write once.

Changes are dotted keys (``mqtt.urls``) and table entries appended to arrays (``cameras``);
the result is validated with the agent's own ``load_settings`` before anything is written,
so an installer can never leave a box with a config the daemon refuses.
"""

from __future__ import annotations

import contextlib
import difflib
import grp
import os
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.config import DEFAULT_CONFIG_PATH, Settings, load_settings
from agent.errors import ConfigError, ProvisioningError
from provisioning.identity import SERVICE_USER

# Array-of-table keys the installer flags append to. They follow the driver sections in
# agent.config.Settings; load_settings reports an unknown key if a driver is absent.
BUTTONS_KEY = "gpio.buttons"
READERS_KEY = "rfid.readers"
CAMERAS_KEY = "vision.cameras"
_ENTRY_IDENTITY_KEYS = ("name", "id")


# TOML output ---------------------------------------------------------------------------------


def dump_toml(doc: Mapping[str, Any]) -> str:
    """Serialise a nested dict to TOML deterministically (same input, same bytes).

    Covers what a config needs: strings, booleans, numbers, paths, lists of scalars, tables
    and arrays of tables. ``None`` values are left out (absent means "default").
    """
    lines: list[str] = []
    _dump_table(doc, [], lines)
    return "\n".join(lines).strip("\n") + "\n"


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _dump_table(table: Mapping[str, Any], path: list[str], lines: list[str]) -> None:
    scalars = [
        (k, v)
        for k, v in table.items()
        if v is not None and not isinstance(v, dict) and not _is_table_array(v)
    ]
    for key, value in scalars:
        lines.append(f"{_key(key)} = {_value(value, '.'.join([*path, key]))}")
    for key, value in table.items():
        if isinstance(value, dict):
            sub = [*path, key]
            # A table holding only sub-tables needs no header of its own.
            if not value or any(not isinstance(v, dict) and v is not None for v in value.values()):
                lines.extend(["", f"[{'.'.join(_key(p) for p in sub)}]"])
            _dump_table(value, sub, lines)
        elif _is_table_array(value):
            sub = [*path, key]
            for entry in value:
                lines.extend(["", f"[[{'.'.join(_key(p) for p in sub)}]]"])
                _dump_table(entry, sub, lines)


def _key(key: str) -> str:
    if key and all(c.isalnum() or c in "_-" for c in key):
        return key
    return _string(key)


def _string(text: str) -> str:
    out = ['"']
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _value(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return _string(str(value))
    if isinstance(value, list):
        return "[" + ", ".join(_value(v, where) for v in value if v is not None) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{_key(k)} = {_value(v, where)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    raise ProvisioningError(f"{where}: cannot write a {type(value).__name__} to TOML")


# Requested changes ---------------------------------------------------------------------------


def parse_value(text: str) -> Any:
    """A flag value as TOML if it parses (``17``, ``true``, ``["a", "b"]``), else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_assignment(text: str) -> tuple[str, Any]:
    """``mqtt.keepalive_s=30`` → (``"mqtt.keepalive_s"``, 30)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ProvisioningError(f"{text!r}: expected KEY=VALUE")
    return key, parse_value(raw.strip())


def parse_entry(spec: str) -> dict[str, Any]:
    """``name=gate,pin=17,pull_up=true`` → a table; values parsed like ``parse_value``.

    A value containing commas must be quoted TOML (``urls=["a","b"]`` is split on top-level
    commas only).
    """
    entry: dict[str, Any] = {}
    for part in _split_top_level(spec):
        if not part.strip():
            continue
        key, value = parse_assignment(part)
        set_dotted(entry, key, value)
    if not entry:
        raise ProvisioningError(f"{spec!r}: expected KEY=VALUE[,KEY=VALUE...]")
    return entry


def _split_top_level(spec: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth, quote = 0, ""
    for ch in spec:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def _parent_table(doc: dict[str, Any], dotted: str) -> tuple[dict[str, Any], str]:
    """The table holding the last part of ``dotted`` (created on the way) and that part."""
    node = doc
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ProvisioningError(f"{dotted}: {part!r} is a value, not a section")
        node = child
    return node, parts[-1]


def set_dotted(doc: dict[str, Any], dotted: str, value: Any) -> None:
    node, last = _parent_table(doc, dotted)
    if value is None:
        node.pop(last, None)
    else:
        node[last] = value


def add_entry(doc: dict[str, Any], array_key: str, entry: dict[str, Any]) -> None:
    """Append ``entry`` to ``doc[array_key]``, replacing an entry with the same name/id.

    Re-running the installer with the same flags therefore leaves the array unchanged.
    """
    node, last = _parent_table(doc, array_key)
    items = node.setdefault(last, [])
    if not isinstance(items, list):
        raise ProvisioningError(f"{array_key}: is not a list in the existing config")
    ident = next(((k, entry[k]) for k in _ENTRY_IDENTITY_KEYS if k in entry), None)
    for i, existing in enumerate(items):
        if existing == entry:
            return
        if ident and isinstance(existing, dict) and existing.get(ident[0]) == ident[1]:
            items[i] = entry
            return
    items.append(entry)


@dataclass
class ConfigChanges:
    """What an installer asked for: dotted assignments and table entries to add."""

    assignments: list[tuple[str, Any]] = field(default_factory=list)
    entries: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def set(self, dotted: str, value: Any) -> ConfigChanges:
        self.assignments.append((dotted, value))
        return self

    def add(self, array_key: str, entry: dict[str, Any]) -> ConfigChanges:
        self.entries.append((array_key, entry))
        return self

    def apply(self, doc: dict[str, Any]) -> dict[str, Any]:
        for dotted, value in self.assignments:
            set_dotted(doc, dotted, value)
        for array_key, entry in self.entries:
            add_entry(doc, array_key, entry)
        return doc

    def __bool__(self) -> bool:
        return bool(self.assignments or self.entries)


# Validate, diff, write -----------------------------------------------------------------------


def validate_text(text: str) -> Settings:
    """Validate TOML text with the agent's loader on a private temp copy; reasons on failure."""
    with tempfile.TemporaryDirectory(prefix="outpost-config-") as tmp:
        path = Path(tmp) / "outpost.toml"
        path.write_text(text)
        path.chmod(0o600)
        try:
            return load_settings(path)
        except ConfigError as exc:
            raise ProvisioningError(str(exc).replace(str(path), "the new configuration")) from None


def read_config(path: Path) -> tuple[str, dict[str, Any]]:
    """Current text and parsed document of ``path`` ('' and {} when it does not exist)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return "", {}
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProvisioningError(f"{path}: existing file is not valid TOML ({exc})") from None


def unified_diff(old: str, new: str, path: Path) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"{path} (current)",
            tofile=f"{path} (new)",
        )
    )


@dataclass(frozen=True)
class ConfigResult:
    path: Path
    changed: bool
    written: bool
    diff: str
    settings: Settings


def write_config(
    changes: ConfigChanges,
    path: Path = DEFAULT_CONFIG_PATH,
    dry_run: bool = False,
    group: str = SERVICE_USER,
) -> ConfigResult:
    """Merge ``changes`` into ``path``, validate, and write only if the content changed.

    The file is replaced atomically with mode 0640 (group ``group`` when it exists: the
    service reads it, others cannot; it may hold broker credentials).
    """
    old_text, doc = read_config(path)
    new_text = dump_toml(changes.apply(doc))
    settings = validate_text(new_text)
    diff = unified_diff(old_text, new_text, path)
    changed = new_text != old_text
    if dry_run or not changed:
        return ConfigResult(path, changed, False, diff, settings)
    _write_atomic(path, new_text.encode(), group)
    return ConfigResult(path, changed, True, diff, settings)


def _write_atomic(path: Path, data: bytes, group: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o640)
        if os.geteuid() == 0:
            with contextlib.suppress(KeyError):  # no service group on this machine
                os.fchown(fd, 0, grp.getgrnam(group).gr_gid)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


# Interactive prompts -------------------------------------------------------------------------

Prompt = Callable[[str], str]


def prompt_changes(
    current: Settings | None, ask: Prompt = input, say: Callable[[str], None] = print
) -> ConfigChanges:
    """Ask the installer for the basics; an empty answer keeps the current value.

    Every answer is checked at once, so a typo is re-asked instead of failing at the end.
    """
    changes = ConfigChanges()
    base = current or Settings()
    questions: list[tuple[str, str, Any]] = [
        ("device.id", "Device id", base.device.id),
        ("device.site", "Site path (region/city/county)", base.device.site),
        ("mqtt.urls", "Broker URLs, comma separated (mqtts://host:8883)", ",".join(base.mqtt.urls)),
    ]
    for dotted, label, default in questions:
        while True:
            answer = ask(f"{label} [{default}]: ").strip()
            if not answer:
                break
            value: Any = (
                [u.strip() for u in answer.split(",") if u.strip()]
                if dotted == "mqtt.urls"
                else answer
            )
            trial = ConfigChanges(assignments=[*changes.assignments, (dotted, value)])
            try:
                validate_text(dump_toml(trial.apply({})))
            except ProvisioningError as exc:
                say(f"  not accepted: {_last_line(str(exc))}")
                continue
            changes.set(dotted, value)
            break
    for array_key, label in (
        (BUTTONS_KEY, "panic button"),
        (READERS_KEY, "patrol reader"),
        (CAMERAS_KEY, "camera"),
    ):
        while True:
            spec = ask(f"Add a {label}? KEY=VALUE,... (empty: done): ").strip()
            if not spec:
                break
            try:
                changes.add(array_key, parse_entry(spec))
            except ProvisioningError as exc:
                say(f"  not accepted: {exc}")
    return changes


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else text


def changes_from_flags(
    device_id: str | None = None,
    site: str | None = None,
    broker_urls: Iterable[str] | None = None,
    assignments: Iterable[str] = (),
    buttons: Iterable[str] = (),
    readers: Iterable[str] = (),
    cameras: Iterable[str] = (),
    additions: Iterable[tuple[str, str]] = (),
) -> ConfigChanges:
    changes = ConfigChanges()
    if device_id:
        changes.set("device.id", device_id)
    if site:
        changes.set("device.site", site)
    urls = [u for u in (broker_urls or []) if u]
    if urls:
        changes.set("mqtt.urls", urls)
    for text in assignments:
        changes.set(*parse_assignment(text))
    for key, specs in ((BUTTONS_KEY, buttons), (READERS_KEY, readers), (CAMERAS_KEY, cameras)):
        for spec in specs:
            changes.add(key, parse_entry(spec))
    for key, spec in additions:
        changes.add(key, parse_entry(spec))
    return changes
