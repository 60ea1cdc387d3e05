"""The ``outpost`` command: the daemon (``run``) and the field tech's tools.

Every subcommand prints plain words (or ``--json``) and exits with a documented code:
0 ok, 1 failure, 2 usage, 69 agent not reachable, 78 invalid configuration.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from agent import __version__
from agent.config import DEFAULT_CONFIG_PATH, Settings, load_settings
from agent.control import request, stream
from agent.errors import ConfigError, ControlError

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 69
EXIT_CONFIG = 78


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def _socket(args: argparse.Namespace) -> Path:
    if getattr(args, "socket", None):
        return Path(args.socket)
    return _settings(args).control_socket


def cmd_run(args: argparse.Namespace) -> int:
    from agent.daemon import run_daemon

    settings = _settings(args)
    return run_daemon(settings)


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = _settings(args)
    print(f"config ok: device {settings.device.id}, topics under {settings.topic_base}")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    reply = request(_socket(args), {"op": "status"})
    st = reply["status"]
    if args.json:
        print(json.dumps(st, indent=2, ensure_ascii=False))
        return EXIT_OK
    link = st["link"]
    print(f"device    {st['device_id']}  (outpost {st['version']}, boot {st['boot_count']}, "
          f"up {_duration(st['uptime_s'])})")
    print(f"topics    {st['topic_base']}/…")
    state = "connected" if link["connected"] else "DOWN"
    print(f"link      {state}  broker {link['broker'] or '-'}  MQTT {link['protocol']}  "
          f"connects {link['connects']}  in flight {link['inflight']}")
    if link.get("last_error") and not link["connected"]:
        print(f"          last error: {link['last_error']}")
    print("outbox    class       depth    bytes  oldest")
    for cls, c in st["outbox"].items():
        age = "-" if c["oldest_age_s"] is None else _duration(c["oldest_age_s"])
        print(f"          {cls:<10} {c['depth']:>6} {c['bytes']:>8}  {age}")
    counters = st["outbox_counters"]
    if counters:
        print("counters  " + ", ".join(f"{k} {v}" for k, v in sorted(counters.items())))
    if st["last_events"]:
        print("last      " + "; ".join(f"{src}: {e['type']} #{e['seq']} at {e['ts']}"
                                       for src, e in sorted(st["last_events"].items())))
    for name, comp in st["components"].items():
        print(component_line(name, comp))
    return EXIT_OK


def component_line(name: str, comp: Any, width: int = 200) -> str:
    """A component's status on one line, cut at ``width`` (``--json`` has it whole): numbers,
    flags and nulls first, then text, then nested tables, each kind in its own order, so that
    a long model list or a camera table does not push the counters past the cut."""
    if isinstance(comp, dict):

        def kind(value: Any) -> int:
            if value is None or isinstance(value, bool | int | float):
                return 0
            return 1 if isinstance(value, str) else 2

        comp = dict(sorted(comp.items(), key=lambda kv: kind(kv[1])))
    line = f"{name:<9} " + json.dumps(comp, ensure_ascii=False)
    return line if len(line) <= width else line[: width - 1] + "…"


def cmd_simulate(args: argparse.Namespace) -> int:
    reply = request(_socket(args), {"op": "simulate", "source": args.source, "argv": args.argv})
    return _print_reply(reply, args.json)


def cmd_cmd(args: argparse.Namespace) -> int:
    try:
        payload = json.loads(args.args) if args.args else {}
    except ValueError as exc:
        print(f"arguments are not JSON: {exc}", file=sys.stderr)
        return EXIT_USAGE
    reply = request(_socket(args), {"op": "cmd", "name": args.name, "args": payload})
    return _print_reply(reply, args.json)


def cmd_tail(args: argparse.Namespace) -> int:
    types = args.type or []
    try:
        for obj in stream(_socket(args), {"op": "tail", "types": types}):
            if obj.get("tail"):
                continue
            if args.json:
                print(json.dumps(obj, ensure_ascii=False), flush=True)
            else:
                print(f"{obj.get('ts')} #{obj.get('seq')} {obj.get('priority'):<9} "
                      f"{obj.get('type')} {json.dumps(obj.get('data'), ensure_ascii=False)}",
                      flush=True)
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def cmd_outbox(args: argparse.Namespace) -> int:
    sock = _socket(args)
    if args.action == "stats":
        st = request(sock, {"op": "outbox-stats"})["status"]
        out = {"classes": st["outbox"], "counters": st["outbox_counters"],
               "max_bytes": st["outbox_max_bytes"]}
        if args.json:
            print(json.dumps(out, indent=2))
        else:
            total = sum(c["bytes"] for c in st["outbox"].values())
            print(f"outbox uses {total} of {st['outbox_max_bytes']} bytes")
            for cls, c in st["outbox"].items():
                print(f"  {cls:<10} {c['depth']:>7} events  {c['bytes']:>10} bytes")
            for k, v in sorted(st["outbox_counters"].items()):
                print(f"  {k}: {v}")
        return EXIT_OK
    if args.action == "list":
        reply = request(sock, {"op": "outbox-list", "class": args.cls, "limit": args.limit})
        if args.json:
            print(json.dumps(reply["events"], indent=2))
        else:
            for e in reply["events"]:
                print(f"{e['class']:<10} {e['id']} {e['type']} ({e['bytes']} bytes)")
        return EXIT_OK
    # purge
    if not args.cls:
        print("outbox purge needs --class", file=sys.stderr)
        return EXIT_USAGE
    if args.cls == "alarm" and not args.include_alarms:
        print("refusing to purge alarms: add --include-alarms if you really mean it",
              file=sys.stderr)
        return EXIT_USAGE
    if not args.yes:
        if not sys.stdin.isatty():
            print("purge needs confirmation: run it in a terminal or add --yes", file=sys.stderr)
            return EXIT_USAGE
        answer = input(f"Delete every unsent {args.cls} event on this box? Type 'yes': ")
        if answer.strip() != "yes":
            print("nothing deleted")
            return EXIT_FAIL
    reply = request(sock, {"op": "outbox-purge", "class": args.cls,
                           "include_alarms": args.include_alarms})
    return _print_reply(reply, args.json)


def cmd_plates(args: argparse.Namespace) -> int:
    from agent.plates.cli import main as plates_main

    rc: int = plates_main(args.rest, config=Path(args.config))
    return rc


def cmd_provision(args: argparse.Namespace) -> int:
    from provisioning.cli import main as provision_main

    rc: int = provision_main(args.rest)
    return rc


def _print_reply(reply: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print(json.dumps(reply, indent=2, ensure_ascii=False))
    elif reply.get("ok"):
        print(json.dumps(reply.get("result", reply), ensure_ascii=False))
    else:
        print(f"refused: {reply.get('error')}", file=sys.stderr)
    return EXIT_OK if reply.get("ok") else EXIT_FAIL


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="outpost", description="Outpost edge agent")
    p.add_argument("--version", action="version", version=f"outpost {__version__}")
    p.add_argument("--config", "-c", default=str(DEFAULT_CONFIG_PATH),
                   help=f"config file (default {DEFAULT_CONFIG_PATH})")
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, func: Any, help: str, json_flag: bool = True,
            socket_flag: bool = True) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(func=func)
        if json_flag:
            sp.add_argument("--json", action="store_true", help="machine-readable output")
        if socket_flag:
            sp.add_argument("--socket", help="control socket (default from the config)")
        return sp

    add("run", cmd_run, "run the agent daemon", json_flag=False, socket_flag=False)
    add("check-config", cmd_check_config, "validate the config file and exit",
        json_flag=False, socket_flag=False)
    add("status", cmd_status, "link, outbox and component state of the running agent")
    sp = add("simulate", cmd_simulate,
             "inject an event through the real pipeline: press BUTTON [--hold S], "
             "tap READER TAG, event TYPE [--data JSON]")
    sp.add_argument("source")
    sp.add_argument("argv", nargs=argparse.REMAINDER)
    sp = add("cmd", cmd_cmd, "run a registered command locally, as the centre would")
    sp.add_argument("name")
    sp.add_argument("args", nargs="?", default="", help="JSON object")
    sp = add("tail", cmd_tail, "show events live as the broker acknowledges them")
    sp.add_argument("--type", action="append", help="only types starting with this (repeatable)")
    sp = add("outbox", cmd_outbox, "inspect or purge the durable outbox")
    sp.add_argument("action", choices=["stats", "list", "purge"])
    sp.add_argument("--class", dest="cls", choices=["alarm", "patrol", "vision", "telemetry"])
    sp.add_argument("--limit", type=int, default=50)
    sp.add_argument("--yes", action="store_true", help="purge without asking")
    sp.add_argument("--include-alarms", action="store_true", help="allow purging alarms")
    sp = add("plates", cmd_plates,
             "plate reading tools: plates read IMAGE... | --camera NAME [--json] [--crop]",
             json_flag=False, socket_flag=False)
    sp.add_argument("rest", nargs=argparse.REMAINDER)
    sp = add("provision", cmd_provision, "installer tools (same as outpost-provision)",
             json_flag=False, socket_flag=False)
    sp.add_argument("rest", nargs=argparse.REMAINDER)
    _add_diagnostics(sub, add)
    return p


def _add_diagnostics(sub: Any, add: Any) -> None:
    """Field diagnostics (doctor, test-publish, support-bundle) live in agent.diagnostics."""
    try:
        diagnostics = importlib.import_module("agent.diagnostics")
    except ImportError:
        return
    diagnostics.add_commands(add)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc: int = args.func(args)
        return rc
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
    except ControlError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
