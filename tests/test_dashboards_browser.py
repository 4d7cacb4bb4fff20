"""The dashboards in Debian's Chromium, driven by Playwright, against the real app and store."""

from __future__ import annotations

import base64
import csv
import io
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from itertools import groupby
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope
from playwright.sync_api import Browser, Page, expect, sync_playwright

from classifiers.seed import EMOTIONS
from classifiers.triager import Triager
from dashboards.api import create_app
from dashboards.auth import make_account
from flows.deployments import deployments
from pipeline.bus.memory import InProcessBus
from pipeline.records import Author, DeadLetter, Post, utcnow
from pipeline.settings import Settings
from pipeline.store.embedded import EmbeddedStore
from pipeline.trends.detector import TrendDetector
from pipeline.worker import Worker
from tests.dashboard_server import ARTIFACTS, CHROMIUM_ARGS, free_port, require_chromium, served
from tests.helpers import embedded_settings, make_post

pytestmark = pytest.mark.browser
PASSWORD = "a long demo password"
USERS = {
    "ann": ["agent"],
    "bob": ["agent"],
    "mia": ["marketing"],
    "oli": ["operator"],
    "root": ["admin"],
}
BURST_TEXT = "Acme app is down again, cannot log in at all #acmedown"
VIP = Author(id="vip1", handle="sam_w", name="Sam", followers=250_000, verified=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = require_chromium()
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def seed(store: EmbeddedStore, triager: Triager) -> None:
    """A day of steady posts, a burst five hours ago, and one loud customer with a history."""
    now = utcnow()
    posts: list[Post] = []
    for i in range(48):
        when = now - timedelta(minutes=30 * i + 7)
        posts.append(make_post(i).model_copy(update={"created_at": when}))
    burst_start = now - timedelta(hours=5)
    for j in range(40):
        posts.append(
            make_post(1000 + j, text=BURST_TEXT).model_copy(
                update={"created_at": burst_start + timedelta(seconds=60 * j)}
            )
        )
    history = ("Where is my order #4839201?", "Still no reply about my order", "Hello?")
    for k, text in enumerate(history):
        posts.append(
            make_post(2000 + k, text=text).model_copy(
                update={"author": VIP, "created_at": now - timedelta(days=5 - k)}
            )
        )
    fire = make_post(
        2100, text="My AcmePhone X caught fire while charging, smoke everywhere, I am scared!"
    )
    # Waiting longest, loud and critical: the top of the queue.
    waited = now - timedelta(hours=26)
    posts.append(fire.model_copy(update={"author": VIP, "created_at": waited}))
    triaged = triager.triage(posts, now)
    store.write_batch(triaged)
    # the streaming detector counts them as the worker would, an hour at a time in time order:
    # its records are what the marketing face marks as spikes
    detector = TrendDetector(store, worker_id="seed")
    ordered = sorted(triaged, key=lambda t: t.post.created_at)
    for _, hour in groupby(ordered, key=lambda t: t.post.created_at.replace(minute=0, second=0)):
        detector.update(list(hour), now)
    detector.close()
    for name, roles in USERS.items():
        store.save_user(make_account(name, PASSWORD, roles))


class PlainInbox:
    """aiosmtpd handler: every message the real SMTP server on loopback accepts."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:
        raw = envelope.content if isinstance(envelope.content, bytes) else b""
        parsed = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"


@pytest.fixture
def mailbox() -> Iterator[tuple[PlainInbox, int]]:
    handler = PlainInbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller.port
    controller.stop()


LOST_POST = make_post(3000, text="My parcel never arrived and nobody answers the phone")


def dead_letters(bus: InProcessBus, settings: Settings) -> None:
    """Two dead letters: a post a stage failed on during an outage, and a line that is not JSON."""
    producer = bus.producer()
    for value, stage, reason in (
        (LOST_POST.model_dump_json().encode(), "store", "store unreachable after 5 retries"),
        (b"{not json", "validate", "invalid JSON at line 1"),
    ):
        dead = DeadLetter(
            reason=reason,
            stage=stage,
            original=base64.b64encode(value).decode(),
            topic=settings.topic_raw,
            failed_at=utcnow(),
        )
        producer.send(settings.topic_dlq, dead.model_dump_json().encode())
    producer.flush()


@dataclass
class Site:
    url: str
    store: EmbeddedStore
    bus: InProcessBus
    settings: Settings


@pytest.fixture
def deployment(
    tmp_path: Path, triager: Triager, mailbox: tuple[PlainInbox, int]
) -> Iterator[Site]:
    store = EmbeddedStore(tmp_path / "dashboard.sqlite3")
    store.ensure_schema()
    seed(store, triager)
    settings = embedded_settings(
        data_dir=tmp_path, smtp_host="127.0.0.1", smtp_port=mailbox[1], smtp_starttls=False
    )
    bus = InProcessBus(partitions=settings.partitions)
    bus.ensure_topics([settings.topic_raw, settings.topic_dlq])
    dead_letters(bus, settings)
    with served(create_app(store, settings, bus)) as url:
        yield Site(url, store, bus, settings)
    store.close()


@pytest.fixture
def site(deployment: Site) -> str:
    return deployment.url


def sign_in(browser: Browser, url: str, name: str, path: str) -> Page:
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.goto(url + path)
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("#sign-in")
    expect(page).to_have_url(re.compile(re.escape(path) + "$"))
    return page


def test_agents_claim_work_and_never_share_an_item(
    browser: Browser, site: str, mailbox: tuple[PlainInbox, int]
) -> None:
    ann = sign_in(browser, site, "ann", "/agent")
    top = ann.locator("#queue-table tbody tr").first.get_attribute("data-item")
    ann.click("#claim-next")
    expect(ann).to_have_url(re.compile(r"/agent\?item="))
    item = ann.locator("#item").get_attribute("data-item")
    assert item == top == "test:2100"
    expect(ann.locator("#owner-state")).to_have_attribute("data-state", "mine")
    expect(ann.locator("#reasons li").first).to_be_visible()
    assert ann.locator("#reasons li").count() >= 2
    assert ann.locator("#emotion").inner_text() in EMOTIONS  # the emotion head's word
    expect(ann.locator("#history")).to_contain_text("Still no reply about my order")

    ann.click("#open-escalate")  # the escalation form is a dialog
    ann.select_option("#channel", "email")
    ann.fill("#escalate-reason", "device fire: safety team follows up by e-mail")
    ann.fill("#escalate-email", "sam@example.com")
    ann.fill("#escalate-message", "Please send us a photo of the charger; a courier is on the way.")
    ann.click("#escalate")
    expect(ann.locator("#flash")).to_contain_text("escalated to email")
    expect(ann.locator("#escalations li.escalation")).to_contain_text("sam@example.com")
    [mail] = mailbox[0].messages
    assert mail["To"] == "sam@example.com"
    assert "a courier is on the way" in mail.get_content()
    ann.screenshot(path=str(ARTIFACTS / "agent-console.png"))

    bob = sign_in(browser, site, "bob", "/agent")
    expect(bob.locator(f'#queue-table tr[data-item="{item}"] .holder')).to_have_text("ann")
    bob.goto(f"{site}/agent?item={item}")
    expect(bob.locator("#owner-state")).to_have_attribute("data-state", "other")
    expect(bob.locator("#owner-state")).to_contain_text("ann")
    expect(bob.locator("#actions")).to_have_count(0)
    bob.click("#claim-next")
    expect(bob).to_have_url(re.compile(r"/agent\?item="))
    assert bob.locator("#item").get_attribute("data-item") != item

    watcher = bob.context.new_page()
    watcher.goto(f"{site}/agent?item={item}")
    ann.fill("#reply", "So sorry! Please unplug it; we are calling you now.")
    ann.click("#resolve")
    expect(ann.locator("#flash")).to_contain_text("resolved")
    expect(ann.locator("#owner-state")).to_have_attribute("data-state", "resolved")
    # Bob's open view of the item learns of the change without a reload.
    expect(watcher.locator("#owner-state")).to_have_attribute(
        "data-state", "resolved", timeout=10_000
    )
    expect(watcher.locator(f'#queue-table tr[data-item="{item}"]')).to_have_count(0)


def test_marketing_sees_the_spike_and_drills_down(browser: Browser, site: str) -> None:
    mia = sign_in(browser, site, "mia", "/marketing")
    expect(mia.locator("#volume-chart svg #spike-markers")).to_have_count(1)
    spikes = mia.locator("#spikes li.spike")
    expect(spikes).to_have_count(1)  # the detector's one trend, as in the report and alerts
    expect(spikes.first).to_contain_text("#acmedown")
    # the burst's 40 posts, plus any background post that fell in the same buckets
    expect(spikes.first.locator(".spike-posts")).to_have_text(re.compile(r"^4\d$"))
    mia.screenshot(path=str(ARTIFACTS / "marketing.png"), full_page=True)
    spikes.first.locator("a").click()
    expect(mia.locator("#samples li")).to_have_count(20)  # the newest 20 of the spike's posts
    assert mia.locator("#samples li", has_text="#acmedown").count() >= 17
    exported = mia.request.get(f"{site}/marketing/export.csv?hours=24")
    assert exported.ok and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text())))
    assert sum(int(r["posts"]) for r in rows if r["spike"] == "1") >= 40
    report = mia.request.get(f"{site}/marketing/report.png?hours=24")
    assert report.ok and report.body()[:8] == b"\x89PNG\r\n\x1a\n"
    mia.click("#lang-zh")
    expect(mia.locator("#spikes h2")).to_have_text("峰值")
    charts = mia.locator("svg").all_text_contents()
    # legends and axes in Chinese too: sentiments, topics, languages
    assert any("负面" in c for c in charts) and any("英语" in c for c in charts), charts
    mia.screenshot(path=str(ARTIFACTS / "marketing-zh.png"), full_page=True)


def test_operator_reprocesses_a_dead_letter(
    browser: Browser, deployment: Site, triager: Triager
) -> None:
    stop = threading.Event()
    worker = Worker(deployment.bus, deployment.store, triager, deployment.settings)
    running = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    running.start()
    try:
        oli = sign_in(browser, deployment.url, "oli", "/operator")
        rows = oli.locator("#dlq-table tr[data-key]")
        expect(rows).to_have_count(2)
        lost = oli.locator("#dlq-table tr[data-key]", has_text="store unreachable")
        expect(lost).to_contain_text("My parcel never arrived")
        expect(oli.locator("#lag")).to_contain_text("partition")
        expect(oli.locator("#models tr.selected")).to_have_count(1)
        oli.screenshot(path=str(ARTIFACTS / "operator.png"), full_page=True)
        assert deployment.store.get_post(LOST_POST.id) is None
        lost.locator("button.reprocess").click()
        expect(oli.locator("#flash")).to_contain_text("sent back to posts.raw")
        expect(lost.locator(".reprocessed")).to_contain_text("oli")
        broken = oli.locator("#dlq-table tr[data-key]", has_text="invalid JSON")
        # bytes that are not JSON would only fail again: no button, fix them at the source
        expect(broken.locator("button.reprocess")).to_have_count(0)
        expect(oli.locator("#flows-table tr[data-flow]")).to_have_count(len(deployments()))
        deadline = utcnow() + timedelta(seconds=30)
        while deployment.store.get_post(LOST_POST.id) is None and utcnow() < deadline:
            threading.Event().wait(0.2)
        stored = deployment.store.get_post(LOST_POST.id)
        assert stored is not None and stored["post"]["text"] == LOST_POST.text
    finally:
        stop.set()
        running.join(30)
        worker.close()


FACES = ("/agent", "/marketing", "/operator")
ALLOWED = {
    "ann": {"/agent"},
    "mia": {"/marketing"},
    "oli": {"/operator"},
    "root": set(FACES),
}


def test_every_role_is_refused_where_it_does_not_belong(browser: Browser, site: str) -> None:
    anonymous = browser.new_context().new_page()
    for face in FACES:
        anonymous.goto(site + face)
        expect(anonymous).to_have_url(re.compile(r"/login\?next=" + re.escape(face)))
    assert anonymous.request.get(f"{site}/api/v1/queue").status == 401
    for name, allowed in ALLOWED.items():
        page = sign_in(browser, site, name, sorted(allowed)[0])
        for face in FACES:
            response = page.goto(site + face)
            assert response is not None
            assert response.status == (200 if face in allowed else 403), (name, face)
            if face not in allowed:
                expect(page.locator("#error-status")).to_have_text("403")
        api = page.request.get(f"{site}/api/v1/queue")
        assert api.status == (200 if name in ("ann", "oli", "root") else 403), name
