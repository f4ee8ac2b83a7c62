"""Who may read the agent's port: with a read token, the page, /status and /events need it (a bearer token, or
the sign-in form in a real headless Chromium); /healthz and /metrics stay open and carry no resource values;
the port binds loopback by default, and an agent open to other machines without a read token says so."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port, reconciler_command, wait_for
from tests.e2e.test_status_page import browser

READ = "a-read-token-for-the-tests-0123"
ACTION = "an-action-token-for-the-tests-4567"
TABLE = ("apiVersion: reconciler/v1\nkind: Table\nmetadata: {name: Orders, policy: observe}\n"
         "spec: {partitionKey: {name: Id, type: S}, tags: {team: web}}\n")
LIVE_VALUE = "console-value-7f3a"  # a drifted tag's live value: shown to readers, nowhere else


def get(port: int, path: str, token: str | None = None, host: str = "127.0.0.1") -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"http://{host}:{port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def start(aws, root: Path, log: Path, *extra: str, host: str | None = "127.0.0.1") -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**aws.env, "READ_TOKEN": READ, "ACTION_TOKEN": ACTION}
    env.pop("RECONCILER_HTTP_HOST", None)
    args = [*reconciler_command(), "run", str(root), "--interval", "1h", "--http-port", str(port), "--no-lease",
            "--state-dir", str(log.parent / f"state-{port}"), *(["--http-host", host] if host else []), *extra]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=log.open("a"))
    wait_for(lambda: get(port, "/healthz")[0] == 200, what="the agent's first cycle")
    return proc, port


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


@pytest.mark.slow
def test_a_read_token_guards_the_page_status_and_events(aws, specs, tmp_path):
    aws.owned_table("Orders", team=LIVE_VALUE)
    root, log = specs("t.yaml", TABLE), tmp_path / "agent.log"
    proc, port = start(aws, root, log, "--http-read-token-env", "READ_TOKEN", "--http-token-env", "ACTION_TOKEN")
    try:
        for path in ("/", "/status", "/events"):
            assert get(port, path)[0] == 401, path
            assert get(port, path, "not-the-token-0123456789")[0] == 401, path
            assert get(port, path, READ)[0] == 200, path
            assert get(port, path, ACTION)[0] == 200, path  # the action token reads too
        wait_for(lambda: '"cycles": []' not in get(port, "/status", READ)[1], what="the first cycle's end")
        assert LIVE_VALUE in get(port, "/status", READ)[1]
        code, signin = get(port, "/")
        assert 'name="token"' in signin and LIVE_VALUE not in signin and "Orders" not in signin
        for path in ("/healthz", "/metrics"):
            code, body = get(port, path)
            assert code == 200, path
            assert LIVE_VALUE not in body and READ not in body, path  # no value of a resource

        # a person: the sign-in form in a real browser; the token in no URL, page or cookie
        from selenium.webdriver.common.by import By

        driver = browser(True, 1280, 900)
        try:
            driver.get(f"http://127.0.0.1:{port}/")
            driver.find_element(By.ID, "token").send_keys("not-the-token-0123456789")
            driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
            # the click only sends the form: wait for the answer's page, as a person waits for it to load
            [problem] = wait_for(lambda: driver.find_elements(By.ID, "problem"), timeout=20,
                                 what="the sign-in page's answer")
            assert "not valid" in problem.text
            driver.find_element(By.ID, "token").send_keys(READ)
            driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
            wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#resources tr[data-ref]"), timeout=20,
                     what="the page after signing in")
            assert LIVE_VALUE in driver.find_element(By.ID, "resources").text
            assert driver.current_url == f"http://127.0.0.1:{port}/"
            assert READ not in driver.page_source
            [cookie] = driver.get_cookies()
            assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and READ not in cookie["value"]
            driver.refresh()  # the session holds
            assert driver.find_elements(By.CSS_SELECTOR, "#resources tr[data-ref]")
            driver.find_element(By.CSS_SELECTOR, "form.signout button").click()
            wait_for(lambda: driver.find_elements(By.ID, "token"), timeout=20, what="signed out")
            assert get(port, "/status")[0] == 401
        finally:
            driver.quit()
    finally:
        stop(proc)
    text = log.read_text()
    assert READ not in text and ACTION not in text
    failures = [json.loads(line) for line in text.splitlines() if '"http.auth_failed"' in line]
    assert len(failures) == 1 and failures[0]["attempts"] == 1  # 4 failed attempts, logged once in the minute


def listening(port: int) -> set[str]:
    """The local addresses a socket listens on at `port` (/proc/net/tcp and tcp6: state 0A is LISTEN)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if fields[3] == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_the_port_binds_loopback_by_default_and_an_open_port_says_what_it_exposes(aws, specs, tmp_path):
    root = specs("t.yaml", TABLE)
    proc, port = start(aws, root, tmp_path / "default.log", host=None)
    try:
        assert listening(port) == {"0100007F"}  # 127.0.0.1 only
    finally:
        stop(proc)
    assert "http.exposed" not in (tmp_path / "default.log").read_text()

    log = tmp_path / "open.log"
    proc, port = start(aws, root, log, host="0.0.0.0")
    try:
        assert listening(port) == {"00000000"}
        [warning] = [json.loads(line) for line in log.read_text().splitlines() if '"http.exposed"' in line]
        assert warning["level"] == "warning" and "--http-read-token-env" in warning["message"]
        assert 'id="exposure"' in get(port, "/")[1]  # shown to the page's readers
    finally:
        stop(proc)
    proc, port = start(aws, root, tmp_path / "guarded.log", "--http-read-token-env", "READ_TOKEN", host="0.0.0.0")
    try:
        assert 'id="exposure"' not in get(port, "/", READ)[1]
    finally:
        stop(proc)
    assert "http.exposed" not in (tmp_path / "guarded.log").read_text()
