"""Events: signed webhooks to a real HTTP receiver, the same drift notified once, a dead receiver that
slows nothing, and /events kept across a restart."""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.conftest import free_port, reconciler_command, wait_for

SECRET = "webhook-secret-for-tests"
TABLE = ("apiVersion: reconciler/v1\nkind: Table\nmetadata: {name: Orders, policy: observe}\n"
         "spec: {partitionKey: {name: Id, type: S}, tags: {team: web}}\n")


class Receiver:
    """A webhook receiver on loopback that keeps what it got."""

    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                owner.got.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def events(self) -> list[dict]:
        return [json.loads(body) for _, body in self.got]


def start(aws, root: Path, state: Path, log: Path, *options: str) -> tuple[subprocess.Popen, int]:
    """The daemon; each option that is a URL is a --notify-webhook, the others are passed as they are."""
    port = free_port()
    args = [*reconciler_command(), "run", str(root), "--interval", "1s", "--http-port", str(port), "--http-host",
            "127.0.0.1", "--no-lease", "--state-dir", str(state)]
    for option in options:
        args += ["--notify-webhook", option] if option.startswith("http://") else [option]
    proc = subprocess.Popen(args, env={**aws.env, "RECONCILER_WEBHOOK_SECRET": SECRET}, stdout=subprocess.DEVNULL,
                            stderr=log.open("a"))
    return proc, port


def get_events(port: int) -> list[dict]:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/events", timeout=5) as answer:
        return json.load(answer)["events"]


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


def test_signed_events_once_per_drift_a_dead_receiver_slows_nothing_and_history_survives(aws, specs, tmp_path):
    root = specs("t.yaml", TABLE)
    aws.client("dynamodb")
    aws.owned_table("Orders", team="console")
    receiver, dead = Receiver(), f"http://127.0.0.1:{free_port()}/nobody-listens"
    state, log = tmp_path / "state", tmp_path / "daemon.log"
    proc, port = start(aws, root, state, log, dead, receiver.url)
    try:
        wait_for(lambda: len([e for e in log.read_text().splitlines() if '"cycle.done"' in e]) >= 5,
                 what="five cycles")
        wait_for(lambda: receiver.got, timeout=10, what="the event delivered, whatever the dead receiver does")
        events = get_events(port)
    finally:
        stop(proc)
    drift = [e for e in receiver.events() if e["type"] == "drift.detected"]
    assert len(drift) == 1  # five cycles of the same drift: sent once
    headers, body = receiver.got[0]
    # signed over the exact body, as docs/events.md tells a receiver to check it (the standard library's HMAC, not
    # the agent's own code)
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Reconciler-Signature"], expected)
    assert drift[0]["format"] == "reconciler.event/v2" and drift[0]["kind"] == "Table"
    assert drift[0]["fields"] == [{"path": "spec.tags.team", "before": "console", "after": "web"}]
    assert events[0]["type"] == "drift.detected" and len([e for e in events if e["type"] == "drift.detected"]) == 1
    cycles = [json.loads(line)["duration_ms"] for line in log.read_text().splitlines() if '"cycle.done"' in line]
    assert max(cycles) < 2000  # the dead receiver (retried with backoff on its own thread) held up no cycle
    assert '"notify.failed"' in log.read_text()

    proc, port = start(aws, root, state, log)  # restarted, same state directory
    try:
        wait_for(lambda: get_events(port), what="/events after a restart")
        kept = get_events(port)
    finally:
        stop(proc)
    assert any(e["type"] == "drift.detected" and e["name"] == "Orders" for e in kept)


def test_people_are_told_through_apprise_once_drift_has_lasted(aws, specs, tmp_path):
    """--notify with apprise's generic json:// scheme (the same path as slack://, msteams://, ...) to a real
    receiver; --notify-after 3 holds the drift back until it has lasted three cycles."""
    root = specs("t.yaml", TABLE)
    aws.client("dynamodb")
    aws.owned_table("Orders", team="console")
    receiver = Receiver()
    chat = receiver.url.replace("http://", "json://")
    log = tmp_path / "daemon.log"
    proc, _ = start(aws, root, tmp_path / "state", log, "--notify", chat, "--notify-after", "3")
    try:
        wait_for(lambda: receiver.got, timeout=30, what="the message")
    finally:
        stop(proc)
    [message] = receiver.events()
    assert message["title"] == "reconciler: drift.detected" and message["type"] == "warning"
    assert "Table/Orders: drifted (policy: observe)" in message["message"]
    assert 'spec.tags.team: "console" -> "web"' in message["message"]
    lines = log.read_text().splitlines()
    reported = next(i for i, line in enumerate(lines) if '"event": "drift.detected"' in line)
    assert sum('"cycle.done"' in line for line in lines[:reported]) >= 2  # the third cycle reported it
