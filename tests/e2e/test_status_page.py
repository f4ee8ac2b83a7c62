"""The status page at `/`, in a real headless Chromium (Debian's chromium, driven by selenium): the
resources, a drifted field, a pending resource and the Redis health steps are visible, with and without
JavaScript, on a phone and at 1920 px in dark mode; screenshots are written and their size checked."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port, reconciler_command, wait_for

pytestmark = pytest.mark.slow

STACK = """\
apiVersion: reconciler/v1
kind: Table
metadata: {name: Orders, policy: observe}
spec: {partitionKey: {name: Id, type: S}, tags: {team: web}}
---
apiVersion: reconciler/v1
kind: CacheCluster
metadata: {name: app-cache}
spec:
  allowFrom: [{securityGroupName: bastion}]
  transitEncryption: true
  authToken: {fromEnv: REDIS_AUTH_TOKEN}
  healthCheck: {endpoint: "ENDPOINT", tls: false, timeoutSeconds: 2}
"""


def browser(javascript: bool, width: int, height: int, dark: bool = False):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 f"--window-size={width},{height}"):
        options.add_argument(flag)
    if not javascript:
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"),
                              options=options)
    if dark:
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia",
                               {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    return driver


def check_page(driver, url: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url)
    found = driver.find_elements(By.CSS_SELECTOR, "#resources tr[data-ref]")
    rows = {row.get_attribute("data-ref"): row.text for row in found}
    assert set(rows) == {"Table/Orders", "CacheCluster/app-cache"}
    assert "drifted" in rows["Table/Orders"] and "spec.tags.team" in rows["Table/Orders"]
    assert '"console"' in rows["Table/Orders"] and '"web"' in rows["Table/Orders"]
    assert "pending" in rows["CacheCluster/app-cache"] and "creating" in rows["CacheCluster/app-cache"]
    # how far along AWS's work is, against how long it usually takes (a create: ~10 min)
    bar = driver.find_element(By.CSS_SELECTOR, "tr[data-ref='CacheCluster/app-cache'] .progress")
    assert bar.get_attribute("aria-valuemax") == "600" and bar.is_displayed()
    assert 0 <= int(bar.get_attribute("aria-valuenow")) < 600
    assert "elasticache.create" in rows["CacheCluster/app-cache"] and "of ~10m" in rows["CacheCluster/app-cache"]
    health = driver.find_element(By.CSS_SELECTOR, "table.health[data-cluster='app-cache']").text
    for step in ("dns", "tcp", "auth", "ping", "set", "get", "del"):
        assert step in health
    assert " ms" in health and "healthy" in health
    assert driver.find_elements(By.CSS_SELECTOR, "#chart rect")  # the cycles' chart
    assert "drift.detected" in driver.find_element(By.ID, "events").text
    assert driver.find_element(By.ID, "overall").text == "progressing"


def test_the_status_page_in_a_real_browser(aws, specs, tmp_path, redis_server):
    root = specs("stack.yaml", STACK.replace("ENDPOINT", redis_server.endpoint))
    aws.client("dynamodb")
    aws.owned_table("Orders", team="console")
    aws.set_time("aws")  # the cache stays `creating` for the whole test
    port, log = free_port(), tmp_path / "daemon.log"
    env = {**aws.env, "REDIS_AUTH_TOKEN": redis_server.password}
    proc = subprocess.Popen([*reconciler_command(), "run", str(root), "--interval", "2s", "--http-port", str(port),
                             "--http-host", "127.0.0.1", "--no-lease", "--state-dir", str(tmp_path / "state")],
                            env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    url = f"http://127.0.0.1:{port}/"
    try:
        def ready() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as answer:
                status = json.load(answer)
            return len(status.get("cycles") or []) >= 2 and bool(status.get("health"))

        wait_for(ready, timeout=60, what="two cycles and a health check")
        shots = {}
        for name, javascript, size, dark in (("desktop-dark", True, (1920, 1200), True),
                                             ("phone", True, (390, 844), False),
                                             ("no-javascript", False, (1280, 1000), False)):
            driver = browser(javascript, *size, dark=dark)
            try:
                check_page(driver, url)
                # the page's script marks <html class="js">: absent, JavaScript really was off in that run
                from selenium.webdriver.common.by import By

                marked = "js" in (driver.find_element(By.TAG_NAME, "html").get_attribute("class") or "").split()
                assert marked == javascript, f"{name}: JavaScript {'on' if marked else 'off'}, expected the other"
                path = tmp_path / f"status-{name}.png"
                assert driver.save_screenshot(str(path))
                shots[name] = path
            finally:
                driver.quit()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    for name, path in shots.items():
        assert path.stat().st_size > 20_000, f"{name}: a screenshot of {path.stat().st_size} bytes shows too little"
    if os.environ.get("RECONCILER_UPDATE_SCREENSHOT"):  # docs/status-page.png is taken by this test
        shutil.copy(shots["desktop-dark"], ROOT / "docs" / "status-page.png")
    assert Path(shots["phone"]).exists()
