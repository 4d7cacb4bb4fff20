"""The assist panel of the agent console in Debian's Chromium, against the real app and store:
similar resolved cases with their replies and outcomes, a suggested reply filled from the post
and edited before it is sent, the tone cue and knowledge, in English and in Chinese."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from classifiers.triager import Triager
from dashboards.api import create_app
from dashboards.auth import make_account
from dashboards.i18n import translate
from pipeline.assist.assistant import Assistant, tone_of
from pipeline.assist_records import KnowledgeArticle, ReplyTemplate
from pipeline.outbound.replies import REPLY
from pipeline.queue.agent_queue import AgentQueue
from pipeline.records import Author, Post, utcnow
from pipeline.store.embedded import EmbeddedStore
from tests.dashboard_server import ARTIFACTS, served
from tests.helpers import embedded_settings
from tests.test_dashboards_browser import PASSWORD, browser, sign_in  # noqa: F401  (fixture)

pytestmark = pytest.mark.browser
LATE = (
    "My order #{n} is {d} days late and tracking hasn't moved",
    "Where is my parcel? Order {n} still not delivered after {d} days",
    "Package for order #{n} never arrived, it's been {d} days",
)
PAST_REPLY = "Sorry for the wait: your order was re-sent today, tracking follows by e-mail."
ANGRY = (
    "This is outrageous!! Order #4839777 is 12 days late, tracking dead, and nobody answers."
    " Worst service ever, I want my money back NOW"
)


def post(i: int, text: str, when_minutes_ago: int) -> Post:
    return Post(
        source="test",
        native_id=str(i),
        author=Author(id=f"a{i}", handle=f"user{i}"),
        text=text,
        created_at=utcnow() - timedelta(minutes=when_minutes_ago),
    )


@pytest.fixture
def site(tmp_path: Path, triager: Triager) -> Iterator[tuple[str, EmbeddedStore, str]]:
    store = EmbeddedStore(tmp_path / "assist.sqlite3")
    store.ensure_schema()
    store.save_user(make_account("ann", PASSWORD, ["agent"]))
    past = [post(i, LATE[i % 3].format(n=4839200 + i, d=3 + i % 5), 600 - i) for i in range(8)]
    store.write_batch(triager.triage(past, utcnow()))
    queue = AgentQueue(store)
    while (item := queue.claim_next("lee")) is not None:
        queue.resolve(item.id, "lee", PAST_REPLY)
    store.write_batch(triager.triage([post(99, ANGRY, 5)], utcnow()))
    item = store.get_item("test:99")
    assert item is not None
    assistant = Assistant(store)
    assistant.save_template(
        ReplyTemplate(id="late", topic=item.topic, language="en", title="Late order",
                      body="Sorry {handle}, order {order_number} was re-sent today."),
        by="olga",
    )
    assistant.save_article(
        KnowledgeArticle(id="trace", title="Late orders: open a carrier trace", language="en",
                         body="Orders late by more than 5 days: open a carrier trace and"
                              " re-send.", topics=[item.topic]),
        by="olga",
    )
    with served(create_app(store, embedded_settings(data_dir=tmp_path))) as url:
        yield url, store, item.topic
    store.close()


def test_the_assist_panel_helps_with_the_open_item(
    browser: Browser, site: tuple[str, EmbeddedStore, str]  # noqa: F811
) -> None:
    url, store, _ = site
    ann = sign_in(browser, url, "ann", "/agent")
    ann.click("#claim-next")
    expect(ann.locator("#item")).to_have_attribute("data-item", "test:99")

    cases = ann.locator("#similar-cases li.similar-case")
    expect(cases).to_have_count(5)
    expect(cases.first).to_contain_text("re-sent today, tracking follows by e-mail")
    expect(cases.first.locator(".outcome")).to_have_text("resolved on first reply")
    expect(ann.locator("#knowledge li.article")).to_contain_text("open a carrier trace")
    tone = tone_of(store.get_post("test:99"))
    assert tone is not None  # the post is plainly upset: the cue must be there
    expect(ann.locator("#tone-cue")).to_have_text(translate("en", f"tone_{tone}"))

    suggestion = ann.locator('#suggestions .suggestion[data-template="late"] .suggestion-text')
    expect(suggestion).to_have_value("Sorry @user99, order 4839777 was re-sent today.")
    edited = "Sorry @user99, order 4839777 was re-sent today, with a refund of the postage."
    suggestion.fill(edited)
    ann.locator('#suggestions .suggestion[data-template="late"] .use-suggestion').click()
    expect(ann.locator("#reply")).to_have_value(edited)
    ann.screenshot(path=str(ARTIFACTS / "agent-assist.png"), full_page=True)
    ann.click("#resolve")
    expect(ann.locator("#flash")).to_contain_text("resolved")
    [sent] = store.find_records(REPLY, {"item_id": "test:99"})
    assert sent["text"] == edited

    ann.click("#lang-zh")  # the choice stays with the session
    ann.goto(f"{url}/agent?item=test:99")
    expect(ann.locator("#assist h3")).to_have_text("辅助")
    expect(ann.locator("#similar-cases .outcome").first).to_have_text("首次回复即解决")
    expect(ann.locator("#tone-cue")).to_contain_text("客户")
    ann.screenshot(path=str(ARTIFACTS / "agent-assist-zh.png"), full_page=True)
