"""One scan over everything the agent writes — CLI output, plans (text and JSON), debug logs,
the daemon's /status, /metrics and /healthz — for a spec whose AUTH token really is used:
the value never appears, only `(sensitive)`."""

from __future__ import annotations

import json
import subprocess
import urllib.request

from tests.conftest import free_port, reconciler_command, start_redis, wait_for
from tests.specs import cache

SECRET, ROTATED = "Zq8-first-secret-token-4711", "Zq8-rotated-secret-token-0815"

CACHE = cache(healthCheck={"timeoutSeconds": 2, "tls": False, "endpoint": "ENDPOINT"}, tags={"team": "web"})


def test_no_secret_value_appears_in_logs_plans_status_or_metrics(cli, specs, aws, tmp_path):
    redis = start_redis(tmp_path, password=SECRET)
    outputs: dict[str, str] = {}
    try:
        root = specs("cache.yaml", CACHE.replace("ENDPOINT", redis.endpoint))
        env = {**aws.env, "REDIS_AUTH_TOKEN": SECRET, "RECONCILER_LOG_LEVEL": "debug"}

        def record(name: str, *args: str, environment: dict[str, str] = env) -> None:
            result = cli(*args, str(root), env=environment)
            assert "Traceback" not in result.err, result.err
            outputs[f"{name} (stdout)"], outputs[f"{name} (stderr)"] = result.out, result.err

        record("plan", "plan")
        record("plan --json", "plan", "--json")
        record("apply", "apply", "--auto-approve")
        record("health", "health", "--json")
        rotated = {**env, "REDIS_AUTH_TOKEN": ROTATED}
        record("plan after rotation", "plan", environment=rotated)
        record("plan --json after rotation", "plan", "--json", environment=rotated)
        record("apply rotation", "apply", "--auto-approve", environment=rotated)
        subprocess.run(["redis-cli", "-p", str(redis.port), "-a", SECRET, "--no-auth-warning", "CONFIG", "SET",
                        "requirepass", ROTATED], check=True, capture_output=True)
        outputs.update(daemon_outputs(root, rotated, tmp_path))
    finally:
        redis.stop()

    [change] = json.loads(outputs["plan --json after rotation (stdout)"])["changes"]
    [token] = [f for f in change["fields"] if f["path"].endswith("authToken")]  # the rotation was planned...
    assert token["sensitive"] is True and token["after"] == "(sensitive)"  # ...without its value
    assert "authToken = (sensitive value) -> (sensitive value)" in outputs["plan after rotation (stdout)"]
    [checked] = json.loads(outputs["health (stdout)"])["clusters"]
    assert checked["status"] == "healthy"  # the token was really used to AUTH
    assert json.loads(outputs["/status"])["health"][0]["status"] == "healthy"
    assert len(outputs["daemon log"].splitlines()) > 5  # debug logs were really written
    leaks = [name for name, text in outputs.items() if SECRET in text or ROTATED in text]
    assert leaks == []
    print(f"\nscanned {len(outputs)} outputs, {sum(len(t) for t in outputs.values())} characters: no secret")


def daemon_outputs(root, env: dict[str, str], tmp_path) -> dict[str, str]:
    """One daemon cycle at debug level; then its /status, /metrics, /healthz and its whole log."""
    port, log = free_port(), tmp_path / "daemon.log"
    proc = subprocess.Popen([*reconciler_command(), "run", str(root), "--interval", "1h", "--http-port", str(port),
                             "--http-host", "127.0.0.1", "--lease-duration", "5s"],
                            env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))

    def get(path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.read().decode()

    try:
        wait_for(lambda: json.loads(get("/status"))["health"], timeout=60, what="the daemon's first cycle")
        pages = {path: get(path) for path in ("/status", "/metrics", "/healthz")}
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    return {**pages, "daemon log": log.read_text()}
