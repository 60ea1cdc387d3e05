"""Benchmark: agent resident memory idle on the sim profile, and after an outage/drain cycle.

Starts a local mosquitto and ``python -m agent.cli --config <sim-like config> run`` as a
subprocess, reads VmRSS from /proc after it settles, stops the broker, injects ``--events``
telemetry events through the control socket (``simulate event device.sample --count N``),
restarts the broker, waits until the outbox depth is 0 and reads VmRSS again. Goals: idle
<= 60 MB, growth <= 5 MB. Baseline: RSS of a bare ``python -c`` importing paho and sqlite3.

    .venv/bin/python bench/rss.py [--events 20000] [--chunk 5000] [--settle-s 10] [--core-only]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.control import request  # noqa: E402
from tests.fixtures.broker import Mosquitto  # noqa: E402


def rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    m = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
    assert m
    return int(m.group(1)) / 1024


def sim_config(tmp: Path, port: int, core_only: bool = False) -> Path:
    text = (ROOT / "examples" / "sim.toml").read_text()
    text = text.replace('state_dir = "var/sim"', f'state_dir = "{tmp / "state"}"')
    text = text.replace("mqtt://127.0.0.1:1883", f"mqtt://127.0.0.1:{port}")
    text = text.replace('level = "info"', 'level = "warning"')
    # Room for a 1M-event outage without evicting telemetry: every event must be delivered.
    text = text.replace("[health]", "[outbox]\nmax_bytes = 2_000_000_000\n\n[health]", 1)
    if core_only:
        # Without the camera and plate reader: what the core (outbox, link, control, GPIO,
        # patrol) costs, separately from OpenCV, numpy and the TFLite runtime.
        text = text.split("# --- A camera")[0] + "\n[plates]\nenabled = false\n"
    path = tmp / "sim.toml"
    path.write_text(text)
    return path


def depth(sock: Path) -> int:
    st = request(sock, {"op": "status"})["status"]
    return sum(c["depth"] for c in st["outbox"].values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--chunk", type=int, default=5_000)
    ap.add_argument("--settle-s", type=float, default=10.0)
    ap.add_argument(
        "--core-only", action="store_true", help="sim profile without camera and plate reader"
    )
    args = ap.parse_args()
    base = subprocess.run(
        [
            sys.executable,
            "-c",
            "import paho.mqtt.client, sqlite3, pydantic, re, pathlib;"
            "print(open('/proc/self/status').read())",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    m = re.search(r"^VmRSS:\s+(\d+) kB", base.stdout, re.M)
    assert m
    base_mb = int(m.group(1)) / 1024
    with tempfile.TemporaryDirectory(prefix="outpost-bench-") as d:
        tmp = Path(d)
        broker = Mosquitto(tmp / "broker", persistence=False)
        broker.start()
        conf = sim_config(tmp, broker.port, args.core_only)
        sock = tmp / "state" / "control.sock"
        agent = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "--config", str(conf), "run"],
            cwd=ROOT,
            stderr=(tmp / "agent.log").open("w"),
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    request(sock, {"op": "ping"}, timeout=2)
                    break
                except Exception:
                    time.sleep(0.2)
            time.sleep(args.settle_s)
            idle = rss_mb(agent.pid)
            profile = "sim profile, core only" if args.core_only else "sim profile"
            print(f"baseline: bare python + paho/sqlite3/pydantic imports: {base_mb:.1f} MB")
            print(
                f"agent idle RSS ({profile}, {args.settle_s:.0f}s settle): {idle:.1f} MB "
                f"(goal <= 60 MB; {idle / base_mb:.2f}x bare interpreter)"
            )

            broker.stop()
            t0 = time.monotonic()
            left = args.events
            while left > 0:
                n = min(args.chunk, left)
                reply = request(
                    sock,
                    {
                        "op": "simulate",
                        "source": "event",
                        "argv": ["device.sample", "--count", str(n)],
                    },
                    timeout=600,
                )
                assert reply.get("ok"), reply
                left -= n
            inject_s = time.monotonic() - t0
            peak = rss_mb(agent.pid)
            print(
                f"outage: {args.events} events injected in {inject_s:.1f}s "
                f"({args.events / inject_s:,.0f} ev/s via control socket); "
                f"RSS {peak:.1f} MB, outbox depth {depth(sock)}"
            )
            broker.start()
            t0 = time.monotonic()
            while depth(sock) > 0:
                time.sleep(0.5)
            drain_s = time.monotonic() - t0
            time.sleep(args.settle_s)
            after = rss_mb(agent.pid)
            print(
                f"drained in {drain_s:.1f}s; RSS after drain + settle: {after:.1f} MB, "
                f"growth {after - idle:+.1f} MB (goal <= 5 MB)"
            )
        finally:
            agent.terminate()
            agent.wait(30)
            broker.stop()


if __name__ == "__main__":
    main()
