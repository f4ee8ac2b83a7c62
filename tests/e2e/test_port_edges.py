"""The agent's port as a stranger tries it: raw requests a client library would not send (a negative, a missing, a
huge Content-Length; a chunked body; `Origin: null`), frames and sniffing refused on every answer, actions only for
resources the specs declare, the session cookie `Secure` only when the request came over TLS (the agent's own
listener, or a proxy it trusts), and the page of a table whose drifted item holds a DynamoDB number, in a real
browser."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port, reconciler_command, wait_for

pytestmark = pytest.mark.slow

READ = "a-read-token-for-the-tests-0123"
ACTION = "an-action-token-for-the-tests-4567"
PRODUCTS = """\
apiVersion: reconciler/v1
kind: Table
metadata: {name: Products, policy: observe}
spec:
  partitionKey: {name: Id, type: S}
  items:
    - {Id: p-1, Name: Mug, Price: 12.50, Sizes: [8, 9.5]}
"""


def raw(port: int, request: bytes, tls: ssl.SSLContext | None = None, timeout: float = 10) -> bytes:
    """Send bytes as they are and read the whole answer (the agent closes or answers; it never hangs)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if tls is not None:
        sock = tls.wrap_socket(sock, server_hostname="localhost")
    with sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
            if b"\r\n\r\n" in answer:
                head, _, body = answer.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), None)
                if length is not None and len(body) >= length:
                    break
        return answer


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def headers_of(answer: bytes) -> dict[str, str]:
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
    return {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in head)}


def post(path: str, body: bytes = b"", host: str = "127.0.0.1", **headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", "Connection: close",
             *(f"{k.replace('_', '-')}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def start(aws, root: Path, tmp_path: Path, *extra: str, https: ssl.SSLContext | None = None
          ) -> tuple[subprocess.Popen, int, Path]:
    port, log = free_port(), tmp_path / f"agent-{time.monotonic_ns()}.log"
    env = {**aws.env, "READ_TOKEN": READ, "ACTION_TOKEN": ACTION}
    proc = subprocess.Popen([*reconciler_command(), "run", str(root), "--interval", "1h", "--http-port", str(port),
                             "--no-lease", "--state-dir", str(tmp_path / f"state-{port}"), "--http-read-token-env",
                             "READ_TOKEN", "--http-token-env", "ACTION_TOKEN", *extra],
                            env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    url = f"{'https' if https else 'http'}://127.0.0.1:{port}/status"

    def first_cycle() -> bool:
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {READ}"})
        with urllib.request.urlopen(request, timeout=5, context=https) as answer:
            return bool(json.load(answer).get("resources"))

    wait_for(first_cycle, timeout=60, what="the agent's first reconcile")
    return proc, port, log


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


def test_the_port_refuses_what_it_should_not_take(aws, specs, tmp_path):
    aws.owned_table("Products")
    root = specs("products.yaml", PRODUCTS)
    proc, port, log = start(aws, root, tmp_path, "--http-trusted-proxy", "127.0.0.1")
    try:
        form = b"token=" + READ.encode()
        # Content-Length as a stranger sends it
        assert status_of(raw(port, post("/signin", form, Content_Length="-1"))) == 400
        assert status_of(raw(port, post("/signin", form, Content_Length="abc"))) == 400
        assert status_of(raw(port, post("/signin", form, Content_Length="12, 12"))) == 400
        assert status_of(raw(port, post("/signin", form))) == 411  # none at all
        assert status_of(raw(port, post("/signin", b"5\r\ntoken\r\n0\r\n\r\n", Transfer_Encoding="chunked"))) == 411
        started = time.monotonic()
        huge = raw(port, post("/signin", Content_Length=str(150 * 1024 * 1024)))  # declared, never sent
        assert status_of(huge) == 413 and time.monotonic() - started < 5  # answered without reading it
        assert status_of(raw(port, post("/actions/reconcile", Content_Length="100000",
                                        Authorization=f"Bearer {ACTION}"))) == 413
        # a browser's Origin: this page's own only
        assert status_of(raw(port, post("/signin", form, Content_Length=str(len(form)), Origin="null"))) == 403
        assert status_of(raw(port, post("/signin", form, Content_Length=str(len(form)),
                                        Origin="https://evil.example"))) == 403
        signed = raw(port, post("/signin", form, host=f"127.0.0.1:{port}", Content_Length=str(len(form)),
                                Origin=f"http://127.0.0.1:{port}"))
        assert status_of(signed) == 303
        cookie = headers_of(signed)["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie  # plain HTTP
        # a proxy it trusts (--http-trusted-proxy 127.0.0.1) says the visitor came over TLS: the cookie is Secure
        proxied = raw(port, post("/signin", form, Content_Length=str(len(form)), X_Forwarded_Proto="https"))
        assert "; Secure" in headers_of(proxied)["set-cookie"]
        # actions: only for what the specs declare
        act = {"Authorization": f"Bearer {ACTION}", "Content_Length": "0"}
        for ref in ("Nope/../../etc", "Table/Missing", "Table/Products/x"):
            assert status_of(raw(port, post(f"/actions/pause?resource={ref}", **act))) == 404, ref
        assert status_of(raw(port, post("/actions/reconcile?resource=Table/Missing", **act))) == 404
        assert status_of(raw(port, post("/actions/pause?resource=Table/Products", **act))) == 200
        paused = json.loads((tmp_path / f"state-{port}" / "paused.json").read_text())
        assert paused == ["Table/Products"]
        assert status_of(raw(port, post("/actions/resume?resource=Table/Products", **act))) == 200
        # never framed, never sniffed: every answer, errors and the base class's own included
        for request in (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                        b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                        b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                        post("/signin", form, Content_Length="-1"),
                        b"BREW /pot HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"):
            answer = raw(port, request)
            headers = headers_of(answer)
            assert status_of(answer) in (200, 303, 400, 401, 404, 501), answer[:100]
            assert headers.get("x-frame-options") == "DENY", request
            assert headers.get("content-security-policy") == "frame-ancestors 'none'", request
            assert headers.get("x-content-type-options") == "nosniff", request
    finally:
        stop(proc)
    text = log.read_text()
    assert "Traceback" not in text and READ not in text


def test_a_tls_listener_serves_https_and_a_secure_cookie(aws, specs, tmp_path, tls_certs):
    aws.owned_table("Products")
    root = specs("products.yaml", PRODUCTS)
    https = ssl.create_default_context(cafile=tls_certs["ca"])
    proc, port, log = start(aws, root, tmp_path, "--http-tls-cert", tls_certs["cert"], "--http-tls-key",
                            tls_certs["key"], https=https)
    try:
        form = b"token=" + READ.encode()
        signed = raw(port, post("/signin", form, Content_Length=str(len(form))), tls=https)
        assert status_of(signed) == 303 and "; Secure" in headers_of(signed)["set-cookie"]
        with pytest.raises((ConnectionError, OSError)):  # plain HTTP gets no page from a TLS port
            answer = raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", timeout=5)
            assert b"200" not in answer.split(b"\r\n")[0]
            raise ConnectionError("closed without an HTTP answer")
        probe = subprocess.run([sys.executable, "-m", "reconciler.agent.probe"],
                               env={**aws.env, "RECONCILER_HTTP_PORT": str(port),
                                    "RECONCILER_HTTP_TLS_CERT": tls_certs["cert"]}, capture_output=True, text=True)
        assert probe.returncode == 0, probe.stderr  # the container's HEALTHCHECK speaks HTTPS too
    finally:
        stop(proc)
    assert "Traceback" not in log.read_text()


def test_a_drifted_decimal_item_shows_on_the_page_in_a_browser(aws, specs, tmp_path):
    """The example stack's `Price: 12.50` drifted on a table under `policy: observe`: the page, /status and /events
    show the numbers as numbers, for as long as the drift lasts (it once answered an empty reply)."""
    aws.owned_table("Products")
    aws.client("dynamodb").put_item(TableName="Products", Item={
        "Id": {"S": "p-1"}, "Name": {"S": "Mug"}, "Price": {"N": "9.99"}, "Sizes": {"L": [{"N": "8"}, {"N": "9.5"}]}})
    root = specs("products.yaml", PRODUCTS)
    proc, port, log = start(aws, root, tmp_path)
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/status", headers={"Authorization": f"Bearer {READ}"})
        with urllib.request.urlopen(request, timeout=5) as answer:
            status = json.load(answer)
        [entry] = status["resources"]
        assert entry["state"] == "drifted"
        [price] = [f for f in entry["fields"] if f["path"].endswith(".Price")]
        assert price["before"] == 9.99 and price["after"] == 12.5  # numbers, not "Decimal('9.99')"
        from selenium.webdriver.common.by import By

        from tests.e2e.test_status_page import browser

        driver = browser(True, 1280, 900)
        try:
            driver.get(f"http://127.0.0.1:{port}/")
            driver.find_element(By.ID, "token").send_keys(READ)
            driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
            [row] = wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#resources tr[data-ref='Table/Products']"),
                             timeout=20, what="the page after signing in")
            assert "drifted" in row.text and "9.99" in row.text and "12.5" in row.text
            assert "Decimal" not in driver.page_source
        finally:
            driver.quit()
    finally:
        stop(proc)
    text = log.read_text()
    assert "Traceback" not in text and "http.error" not in text
