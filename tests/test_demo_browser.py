"""`make demo` as a new user meets it, in Debian's Chromium: an agent resolves an item, the outage
turns into an incident while they work, marketing sees the same spike, the trend report fits a
1,280 px window, and the operator page lists the seven flows with the SLA watchdog running."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.dashboard_server import ARTIFACTS, CHROMIUM_ARGS, free_port, require_chromium

pytestmark = [pytest.mark.browser, pytest.mark.slow]
FLOWS = ("ingest", "retrain", "trend-report", "sla-watchdog", "replay", "alerts", "health")


@dataclass
class Demo:
    url: str
    password: str


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
    env["TRIAGE_DATA_DIR"] = str(tmp_path_factory.mktemp("data"))
    env["COLUMNS"] = "120"
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "demo", "--serve", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 600
    try:
        while not any(line.strip().startswith("password:") for line in lines):
            line = process.stdout.readline()
            assert line or process.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            lines.append(line)
        found = re.search(r"password: (\S+)", "".join(lines))
        assert found, "".join(lines)
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):  # uvicorn binds just after the lines are printed
            try:
                httpx.get(f"{url}/api/v1/health", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield Demo(url, found.group(1))
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = require_chromium()
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def sign_in(browser: Browser, demo: Demo, name: str, path: str, width: int = 1280) -> Page:
    page = browser.new_context(viewport={"width": width, "height": 900}).new_page()
    page.goto(demo.url + path)
    page.fill("#name", name)
    page.fill("#password", demo.password)
    page.click("#sign-in")
    expect(page).to_have_url(re.compile(re.escape(path) + "$"))
    return page


def test_an_agent_resolves_and_the_outage_becomes_an_incident(
    browser: Browser, demo: Demo
) -> None:
    agent = sign_in(browser, demo, "agent", "/agent")
    agent.click("#claim-next")
    expect(agent).to_have_url(re.compile(r"/agent\?item="))
    agent.fill("#reply", "Sorry about this! A replacement is on its way today.")
    agent.click("#resolve")
    expect(agent.locator("#flash")).to_contain_text("resolved")
    expect(agent.locator("#replies")).to_contain_text("A replacement is on its way")
    expect(agent.locator("#replies")).to_contain_text("sent")
    # the outage arrives while the demo serves: the detector's spike becomes an incident
    deadline = time.monotonic() + 180
    incident = agent.locator("#incidents .incident")
    while incident.count() == 0:
        assert time.monotonic() < deadline, "no incident appeared"
        time.sleep(2)
        agent.reload()
    expect(incident.first).to_contain_text(re.compile(r"acme|503", re.IGNORECASE))
    agent.screenshot(path=str(ARTIFACTS / "demo-agent.png"), full_page=True)

    marketing = sign_in(browser, demo, "marketing", "/marketing?hours=24")
    spikes = marketing.locator("#spikes li.spike")
    expect(spikes.first).to_contain_text(re.compile(r"acme|503", re.IGNORECASE))
    expect(marketing.locator("#volume-chart svg #spike-markers")).to_have_count(1)
    assert not re.search(r"×\s*\d{3,}|\+\d{4,}%", marketing.locator("#rising").inner_text())
    marketing.screenshot(path=str(ARTIFACTS / "demo-marketing.png"), full_page=True)
    report = sign_in(browser, demo, "marketing", "/marketing/report.html?hours=24")
    expect(report.locator("#spikes")).to_contain_text(re.compile(r"acme|503", re.IGNORECASE))
    width = report.evaluate("document.documentElement.scrollWidth")
    assert width <= 1280, f"the trend report is {width} px wide"


def test_the_operator_sees_every_flow_and_only_useful_reprocess_buttons(
    browser: Browser, demo: Demo
) -> None:
    operator = sign_in(browser, demo, "operator", "/operator")
    rows = operator.locator("#flows-table tr[data-flow]")
    expect(rows).to_have_count(len(FLOWS))
    assert [rows.nth(i).get_attribute("data-flow") for i in range(len(FLOWS))] == list(FLOWS)
    watchdog = operator.locator('#flows-table tr[data-flow="sla-watchdog"]')
    expect(watchdog).to_have_attribute("data-state", "ok")
    expect(watchdog).to_contain_text("UTC")  # its last run and its next run
    expect(operator.locator('#flows-table tr[data-flow="replay"]')).to_contain_text("on demand")
    expect(operator.locator("#verdict")).to_be_visible()
    # the demo's malformed records cannot parse however often they are sent: no button
    groups = operator.locator("#dlq-table tbody.dlq-group")
    expect(groups.first).to_be_visible()
    assert groups.count() >= 2
    expect(operator.locator('#dlq-table tbody.dlq-group[data-fixable="yes"]')).to_have_count(0)
    expect(operator.locator("#dlq-table button.reprocess")).to_have_count(0)
    operator.screenshot(path=str(ARTIFACTS / "demo-operator.png"), full_page=True)
