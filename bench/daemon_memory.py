"""How much memory does the agent hold? The daemon's RSS, read from outside (/proc/<pid>/status), after 10, 100
and 1,000 cycles of the converged example stack.

The process is `reconciler run` as a user starts it — the page served on its HTTP port, `--watch-events`, a
notifier configured (apprise's json:// to a receiver here) — against a sandbox in a process of its own
(instant AWS time). `--interval` is short so that cycles run back to back; each cycle reads the whole stack,
renders nothing (no one asks for the page), and finds nothing to do. Target (issue 21): at most 100 MiB after
1,000 cycles (issue 36: 64 MiB). Time per cycle is said twice: the wall clock between marks, which includes the
rate limiter's pacing of cycles run back to back (AWS's request rates, not the agent's work), and the cycles' own
duration as the agent records it (/status lastCycle.durationSeconds, the median of the samples).

    python bench/daemon_memory.py [--cycles 1000]
"""

from __future__ import annotations

import argparse
import http.server
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from cycle import start_sandbox
from record import Record

ROOT = Path(__file__).resolve().parent.parent
TARGET_MIB = 64.0  # issue 36 (Flux's kustomize-controller requests 64 MiB)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def status(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=10) as answer:
        return dict(json.load(answer))


def cycles_done(port: int) -> int:
    return int(status(port).get("cyclesDone") or 0)


def converged(port: int) -> None:
    """The figure counts only for an agent doing its whole job: every resource in sync, the last cycle ok."""
    now = status(port)
    states = {f"{r['kind']}/{r['name']}": r["state"] for r in now["resources"]}
    if len(states) != 5 or set(states.values()) != {"in-sync"} or now["lastCycle"]["result"] != "ok":
        raise SystemExit(f"the agent is not in sync, so its memory says nothing: {states}, {now['lastCycle']}")


def receiver() -> int:
    """A tiny HTTP endpoint for the notifier (apprise's json://) to post to."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return int(server.server_address[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=1000)
    args = parser.parse_args()
    script = Path(sys.executable).parent / "reconciler"
    sandbox, env = start_sandbox()
    marks: dict[int, float] = {}
    own: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(ROOT / "specs", Path(tmp) / "specs")
        shutil.copytree(ROOT / "site", Path(tmp) / "site")
        port = free_port()
        agent = subprocess.Popen(
            [str(script), "run", str(Path(tmp) / "specs"), "--interval", "0.1s", "--pending-interval", "0.1s",
             "--http-port", str(port), "--http-host", "127.0.0.1", "--watch-events", "--no-lease",
             "--notify", f"json://127.0.0.1:{receiver()}/", "--state-dir", str(Path(tmp) / "state"),
             "--log-level", "warning"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started = time.monotonic()
        try:
            for mark in sorted({10, 100, args.cycles}):
                while True:
                    try:
                        if cycles_done(port) >= mark:
                            break
                    except OSError:
                        pass
                    if agent.poll() is not None:
                        raise SystemExit(f"the agent exited with {agent.returncode}")
                    time.sleep(0.2)
                marks[mark] = rss_mib(agent.pid)
                converged(port)
                own += [float(status(port)["lastCycle"]["durationSeconds"]) for _ in range(5)]
                print(f"  after {mark} cycles: {marks[mark]:.1f} MiB", flush=True)
        finally:
            agent.terminate()
            agent.wait(timeout=60)
            sandbox.terminate()
            sandbox.wait()
    elapsed = time.monotonic() - started
    last = marks[args.cycles]
    report = Record("daemon_memory")
    report.say(f"daemon RSS (from /proc): after 10 cycles {marks[10]:.1f} MiB, after 100 "
               f"{marks.get(100, float('nan')):.1f} MiB, after {args.cycles} {last:.1f} MiB; "
               f"{elapsed / args.cycles * 1000:.0f} ms per cycle by the wall clock (the limiter's pacing of "
               f"back-to-back cycles included), {statistics.median(own) * 1000:.0f} ms the cycle's own duration "
               "(median)")
    report.say(f"target (at most {TARGET_MIB:.0f} MiB after {args.cycles} cycles): "
               f"{'met' if last <= TARGET_MIB else 'NOT met'}")
    report.figures = {"rss_mib_after_cycles": {str(k): round(v, 1) for k, v in marks.items()},
                      "ms_per_cycle": round(elapsed / args.cycles * 1000),
                      "own_ms_per_cycle": round(statistics.median(own) * 1000), "target_mib": TARGET_MIB}
    report.save()


if __name__ == "__main__":
    main()
