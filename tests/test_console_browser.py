"""The agent console as an agent works it, in Debian's Chromium: filters, search and paging of
the queue, SLA in words, the reply box first with its channel's length counter, "send and next",
keyboard keys, and the escalation dialog; and the console in Chinese."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from classifiers.triager import Triager
from dashboards.api import create_app
from dashboards.auth import make_account
from pipeline.records import Author, Post, utcnow
from pipeline.settings import Settings
from pipeline.store.embedded import EmbeddedStore
from tests.dashboard_server import ARTIFACTS, CHROMIUM_ARGS, require_chromium, served
from tests.helpers import embedded_settings, make_post

pytestmark = pytest.mark.browser
PASSWORD = "a long console password"
USERS = {"ann": ["agent"], "bob": ["agent"], "sue": ["supervisor"], "oli": ["operator"]}
LOUD = Author(id="loud", handle="kim_on_x", name="Kim", followers=400_000, verified=True)
FIRE = (
    "My AcmePhone X caught fire while charging, smoke everywhere, I am scared and furious, "
    "help now!"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = require_chromium()
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def seed(store: EmbeddedStore, triager: Triager) -> list[Post]:
    """Sixty ordinary posts over the last day, and a loud X customer waiting longest."""
    now = utcnow()
    posts = [
        make_post(i).model_copy(update={"created_at": now - timedelta(minutes=23 * i + 3)})
        for i in range(60)
    ]
    posts.append(
        Post(
            source="x",
            native_id="900",
            author=LOUD,
            text=FIRE,
            created_at=now - timedelta(hours=30),
        )
    )
    store.write_batch(triager.triage(posts, now))
    for name, roles in USERS.items():
        store.save_user(make_account(name, PASSWORD, roles))
    return posts


@dataclass
class Site:
    url: str
    store: EmbeddedStore
    settings: Settings


@pytest.fixture
def site(tmp_path: Path, triager: Triager) -> Iterator[Site]:
    store = EmbeddedStore(tmp_path / "console.sqlite3")
    store.ensure_schema()
    seed(store, triager)
    settings = embedded_settings(data_dir=tmp_path)
    with served(create_app(store, settings)) as url:
        yield Site(url, store, settings)
    store.close()


def sign_in(browser: Browser, url: str, name: str, path: str) -> Page:
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.goto(url + path)
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("#sign-in")
    expect(page).to_have_url(re.compile(re.escape(path) + "$"))
    return page


def test_queue_filters_search_pages_and_says_sla_in_words(browser: Browser, site: Site) -> None:
    ann = sign_in(browser, site.url, "ann", "/agent")
    rows = ann.locator("#queue-table tbody tr[data-item]")
    expect(rows).to_have_count(25)
    total = len(site.store.queue_ids())
    expect(ann.locator("#queue-count")).to_contain_text(f"1–25 of {total}")
    top = rows.first
    expect(top.locator(".customer")).to_contain_text("@kim_on_x")
    expect(top.locator(".channel")).to_have_text("X")
    expect(top.locator(".sla")).to_contain_text(re.compile(r"overdue \d+ (d|h)"))
    expect(top.locator("time")).to_have_attribute("title", re.compile(r"UTC$"))
    assert all(
        re.fullmatch(r"(overdue|due in) \d+ .*", t.strip())
        for t in ann.locator("#queue-table .sla").all_inner_texts()
    )

    ann.click("#next-page")
    expect(ann).to_have_url(re.compile(r"page=2"))
    expect(ann.locator("#queue-count")).to_contain_text(f"26–50 of {total}")
    assert ann.locator('#queue-table tr[data-item="x:900"]').count() == 0

    ann.goto(site.url + "/agent")
    ann.select_option("#filter-band", "P4")
    ann.click("#apply-filters")
    bands = ann.locator("#queue-table .band").all_inner_texts()
    assert bands and set(bands) == {"P4"}
    ann.click("#clear-filters")
    ann.select_option("#filter-channel", "x")
    ann.click("#apply-filters")
    expect(rows).to_have_count(1)
    ann.click("#clear-filters")
    ann.fill("#search", "kim_on")  # a customer by handle
    ann.press("#search", "Enter")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-item", "x:900")
    ann.fill("#search", "no such words anywhere")
    ann.press("#search", "Enter")
    expect(rows).to_have_count(0)
    ann.click("#clear-filters")
    ann.select_option("#filter-sla", "on_track")
    ann.click("#apply-filters")
    on_track = ann.locator("#queue-table .sla").all_inner_texts()
    assert on_track and all(t.startswith("due in") for t in on_track)
    ann.select_option("#filter-sla", "overdue")
    ann.click("#apply-filters")
    overdue = ann.locator("#queue-table .sla").all_inner_texts()
    assert overdue and all(t.startswith("overdue") for t in overdue)


def test_claim_reply_first_counter_send_and_next_and_keys(browser: Browser, site: Site) -> None:
    ann = sign_in(browser, site.url, "ann", "/agent")
    ann.keyboard.press("j")
    expect(ann.locator("#queue-table tr.cursor")).to_have_count(1)
    ann.keyboard.press("c")  # claims the most urgent: the X customer
    expect(ann).to_have_url(re.compile(r"/agent\?item=x:900"))
    reply = ann.locator("#reply")
    expect(reply).to_be_visible()
    # the reply box comes right after the post, above the triage and the customer's history
    reply_box, reasons = reply.bounding_box(), ann.locator("#reasons").bounding_box()
    assert reply_box is not None and reasons is not None and reply_box["y"] < reasons["y"]
    assert reply_box["y"] < 700
    expect(ann.locator("#model-versions span")).to_have_count(1)  # one bundle, shown once
    ann.keyboard.press("r")
    expect(reply).to_be_focused()
    ann.keyboard.type("x" * 281)
    counter = ann.locator("#reply-counter")
    expect(counter).to_contain_text("281 / 280")
    expect(counter).to_have_attribute("data-over", "true")
    expect(ann.locator("#send-next")).to_be_disabled()
    reply.fill("We are calling you right now.")
    expect(counter).to_contain_text("29 / 280")
    expect(ann.locator("#send-next")).to_be_enabled()
    ann.locator("#post-text").click()  # leave the reply box so the keys work again
    ann.keyboard.press("e")
    dialog = ann.locator("#escalate-dialog")
    expect(dialog).to_be_visible()
    expect(ann.locator("#escalate-reason")).to_be_visible()
    ann.click("#close-escalate")
    expect(dialog).to_be_hidden()
    ann.screenshot(path=str(ARTIFACTS / "agent-console-item.png"), full_page=True)
    ann.click("#release")
    expect(ann.locator("#owner-state")).to_have_attribute("data-state", "open")

    # a record-only channel: send, resolve and go straight on to the next item
    ann.click("#claim-next")
    expect(ann).to_have_url(re.compile(r"/agent\?item=x:900"))
    ann.click("#release")
    ann.select_option("#filter-channel", "test")
    ann.click("#apply-filters")
    first = ann.locator("#queue-table tbody tr[data-item]").first
    first_id = first.get_attribute("data-item")
    assert first_id is not None
    bob = sign_in(browser, site.url, "bob", "/agent")
    bob.click("#claim-next")  # bob takes the X item, so ann's next claim is a test item
    expect(bob).to_have_url(re.compile(r"item=x:900"))
    ann.click("#claim-next")
    expect(ann).to_have_url(re.compile(r"/agent\?item=test:"))
    held = ann.locator("#item").get_attribute("data-item")
    expect(ann.locator("#reply-counter")).not_to_contain_text("/")  # no limit on this channel
    ann.fill("#reply", "Thanks, sorted: the replacement ships today.")
    ann.click("#send-next")
    expect(ann.locator("#flash")).to_contain_text(f"{held} resolved")
    expect(ann).to_have_url(re.compile(r"/agent\?item=test:"))
    following = ann.locator("#item").get_attribute("data-item")
    assert following not in (held, "x:900")
    expect(ann.locator("#owner-state")).to_have_attribute("data-state", "mine")
    resolved = site.store.get_item(held or "")
    assert resolved is not None and resolved.status == "resolved"
    # a resolved item no longer counts down
    ann.goto(f"{site.url}/agent?item={held}")
    expect(ann.locator("#sla")).to_have_text("resolved")
    expect(ann.locator("#sla")).not_to_have_attribute("data-due", re.compile("."))


def test_console_in_chinese(browser: Browser, site: Site) -> None:
    ann = sign_in(browser, site.url, "ann", "/agent")
    ann.click("#lang-zh")
    expect(ann.locator("#claim-next")).to_have_text("领取下一条")
    top = ann.locator("#queue-table tbody tr[data-item]").first
    expect(top.locator(".sla")).to_contain_text("已超时")
    ann.click("#claim-next")
    expect(ann.locator("#resolve")).to_have_text("发送回复并结案")
    body = ann.locator("#item").inner_text()
    for english in ("urgency", "negative sentiment", "followers", "product_defect", "critical"):
        assert english not in body, english
    expect(ann.locator("#reasons li").first).to_contain_text("紧急度")
    expect(ann.locator("#topic")).not_to_have_text(re.compile(r"^[a-z_]+$"))
    ann.screenshot(path=str(ARTIFACTS / "agent-console-zh.png"), full_page=True)
    ann.fill("#goodwill-amount", "260")
    ann.click("#goodwill")
    expect(ann.locator("#flash")).to_contain_text("已提交审批：超过 250 EUR 的限额")
    expect(ann.locator("#approvals .approval-state")).to_have_text("待审批")
    ann.click("#release")
    expect(ann.locator("#flash")).to_contain_text("已退回队列")
    expect(ann.locator("#owner-state")).to_have_text("待处理")
    filters = ann.locator("#filters").inner_text()
    assert "overdue" not in filters and "已超时" in filters and "产品缺陷" in filters

    sue = sign_in(browser, site.url, "sue", "/approvals")
    sue.click("#lang-zh")
    expect(sue.locator("#approval-rule")).to_contain_text("超过 250 EUR 的补偿或退款需要审批")
    pending = sue.locator("form.approval").first
    expect(pending).to_contain_text("超过 250 EUR 的限额")
    pending.locator(".decision-reason").fill("不符合政策")
    pending.locator("button.deny").click()
    expect(sue.locator("#flash")).to_contain_text("已拒绝 260 EUR（补偿金）")
    expect(sue.locator("#decided tbody tr").first).to_contain_text("已拒绝")
    sue.screenshot(path=str(ARTIFACTS / "approvals-zh.png"), full_page=True)


def test_goodwill_over_the_limit_waits_for_a_supervisor_and_the_agent_sees_it_live(
    browser: Browser, site: Site
) -> None:
    ann = sign_in(browser, site.url, "ann", "/agent")
    ann.click("#claim-next")
    expect(ann).to_have_url(re.compile(r"item=x:900"))
    ann.select_option("#goodwill-kind", "refund")
    ann.fill("#goodwill-amount", "300")
    ann.fill("#goodwill-note", "phone burned: full refund")
    ann.click("#goodwill")
    expect(ann.locator("#flash")).to_contain_text("sent for approval: over the 250 EUR limit")
    request = ann.locator("#approvals li.approval")
    expect(request).to_have_attribute("data-status", "pending")
    approval_id = request.get_attribute("data-approval")

    sue = sign_in(browser, site.url, "sue", "/approvals")
    pending = sue.locator(f'form.approval[data-approval="{approval_id}"]')
    expect(pending).to_contain_text("300 EUR")
    expect(pending).to_contain_text("ann")
    sue.screenshot(path=str(ARTIFACTS / "approvals.png"), full_page=True)
    pending.locator(".decision-reason").fill("device fire: refund approved in full")
    pending.locator("button.approve").click()
    expect(sue.locator("#flash")).to_contain_text("refund of 300 EUR approved")
    expect(sue.locator("#no-pending")).to_be_visible()
    expect(sue.locator(f'#decided tr[data-approval="{approval_id}"]')).to_contain_text("sue")
    # a supervisor is no agent: the console is not theirs
    assert sue.goto(site.url + "/agent") is not None
    expect(sue.locator("#error-status")).to_have_text("403")

    # ann's open page learns of the decision without a reload
    expect(request).to_have_attribute("data-status", "approved", timeout=10_000)
    expect(request.locator(".decision-reason")).to_have_text(
        "device fire: refund approved in full"
    )
    # within the limit, it is granted at once
    ann.fill("#goodwill-amount", "40")
    ann.click("#goodwill")
    expect(ann.locator("#flash")).to_contain_text("credit of 40 EUR granted")
    actions = [e.action for e in site.store.audit_of_items(["x:900"])]
    assert actions.count("goodwill_pending") == 1 and actions.count("goodwill_approved") == 1
    assert actions.count("goodwill_granted") == 1


def test_kpi_page_for_supervisors_and_operators(browser: Browser, site: Site) -> None:
    ann = sign_in(browser, site.url, "ann", "/agent")
    ann.click("#claim-next")  # the X item: its channel has no connector here, so release it
    ann.click("#release")
    ann.select_option("#filter-channel", "test")
    ann.click("#apply-filters")
    ann.locator("#queue-table tbody tr[data-item] a").first.click()
    bob = sign_in(browser, site.url, "bob", "/agent")
    bob.click("#claim-next")  # bob holds the X item
    ann.click("#claim-next")
    expect(ann).to_have_url(re.compile(r"item=test:"))
    ann.fill("#reply", "Sorted, thank you for your patience.")
    ann.click("#resolve")
    expect(ann.locator("#flash")).to_contain_text("resolved")
    assert ann.goto(site.url + "/kpis") is not None
    expect(ann.locator("#error-status")).to_have_text("403")  # agents have the console

    unresolved = len(site.store.queue_ids()) - 1
    for name in ("sue", "oli"):
        page = sign_in(browser, site.url, name, "/kpis")
        expect(page.locator("#kpi-first-response")).to_contain_text("n=1")
        expect(page.locator("#kpi-resolution")).to_contain_text("n=1")
        expect(page.locator("#kpi-items strong")).to_have_text(str(unresolved + 1))
        cells = page.locator("#backlog-table tbody td:not(:first-child)").all_inner_texts()
        assert sum(int(c) for c in cells) == unresolved
        expect(page.locator('#agents-table tr[data-agent="ann"] .handled')).to_have_text("1")
        expect(page.locator('#agents-table tr[data-agent="bob"] .holding')).to_have_text("1")
        expect(page.locator("#backlog-chart svg")).to_have_count(1)
        expect(page.locator("#backlog-chart svg")).to_contain_text("over 24 h")
    page.select_option("#days", "1")
    page.click("#show")
    expect(page).to_have_url(re.compile(r"days=1"))
    # the X post is 30 h old: out of a one-day range
    expect(page.locator("#kpi-items strong")).to_have_text(str(unresolved))
    page.screenshot(path=str(ARTIFACTS / "kpis.png"), full_page=True)
    page.click("#lang-zh")
    expect(page).to_have_url(re.compile(r"days=1"))  # the language switch keeps the range
    expect(page.locator("#kpi-items strong")).to_have_text(str(unresolved))
    expect(page.locator("#backlog-chart h2")).to_have_text("按级别和时长的积压")
    expect(page.locator("#backlog-chart svg")).to_contain_text("超过24小时")
    expect(page.locator("#load-chart svg")).to_contain_text("已处理")
    page.screenshot(path=str(ARTIFACTS / "kpis-zh.png"), full_page=True)
