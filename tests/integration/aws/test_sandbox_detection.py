"""The sandbox is recognised by where it is, never by a variable: the throw-away AUTH token (and every other sandbox
allowance) only when the endpoints boto3 is pointed at are on loopback and answer as the sandbox itself."""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.conftest import ROOT
from tests.specs import cache

CACHE = cache(healthCheck={"tls": False, "timeoutSeconds": 2})


def real_looking_profile(tmp_path: Path) -> dict[str, str]:
    """A shell of someone with a real AWS profile: credentials and a region in ~/.aws, no endpoint."""
    (tmp_path / "config").write_text("[profile prod]\nregion = eu-west-1\n")
    (tmp_path / "credentials").write_text("[prod]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
                                          "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n")
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RECONCILER_", "REDIS_"))}
    return {**keep, "AWS_PROFILE": "prod", "AWS_CONFIG_FILE": str(tmp_path / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"), "PYTHONPATH": str(ROOT)}


def test_reconciler_sandbox_set_alone_changes_nothing(cli, specs, redis_server, tmp_path):
    root = specs("cache.yaml", CACHE)
    env = {**real_looking_profile(tmp_path), "RECONCILER_SANDBOX": "1"}
    done = cli("health", "--endpoint", redis_server.endpoint, str(root), env=env)
    assert done.code == 1 and "the environment variable REDIS_AUTH_TOKEN is not set" in done.out
    assert "secret.throw_away" not in done.err


class ImpostorHandler(BaseHTTPRequestHandler):
    """A loopback server that answers /_sandbox/time with a factor but is not the sandbox."""

    def do_GET(self) -> None:
        body = json.dumps({"factor": 0.01}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


def test_an_endpoint_that_is_not_the_sandbox_gets_no_throw_away_token(cli, specs, aws, redis_server, tmp_path):
    root = specs("cache.yaml", CACHE)
    impostor = ThreadingHTTPServer(("127.0.0.1", 0), ImpostorHandler)
    threading.Thread(target=impostor.serve_forever, daemon=True).start()
    try:
        env = {**real_looking_profile(tmp_path), "AWS_ENDPOINT_URL": f"http://127.0.0.1:{impostor.server_port}"}
        done = cli("health", "--endpoint", redis_server.endpoint, str(root), env=env)
        assert done.code == 1 and "REDIS_AUTH_TOKEN is not set" in done.out
    finally:
        impostor.shutdown()
        impostor.server_close()
    # the sandbox, but ElastiCache (where the token goes) pointed elsewhere: not the sandbox either
    env = {k: v for k, v in aws.env.items() if k != "REDIS_AUTH_TOKEN"}
    env["AWS_ENDPOINT_URL_ELASTICACHE"] = "https://elasticache.eu-west-1.amazonaws.com"
    done = cli("health", "--endpoint", redis_server.endpoint, str(root), env=env)
    assert done.code == 1 and "REDIS_AUTH_TOKEN is not set" in done.out
    # and the sandbox itself, recognised by its own answer: the throw-away value (Redis refuses it: AUTH fails)
    env.pop("AWS_ENDPOINT_URL_ELASTICACHE")
    done = cli("health", "--json", "--endpoint", redis_server.endpoint, str(root), env=env)
    assert "secret.throw_away" in done.err
    [cluster] = json.loads(done.out)["clusters"]
    assert cluster["steps"][-1]["step"] == "auth" and not cluster["steps"][-1]["ok"]
