"""Replies on Bluesky, written to a real AT Protocol server: Bluesky's reference PDS
(``@atproto/pds``) with its PLC directory, which ``scripts/services`` runs on loopback.

A customer account posts; the brand's account answers through the reply method that
``connectors/replying.py`` builds from the settings (handle in the environment, app password in
the secrets folder, as in production). The reply is then read back from the PDS as it was
stored: its text, and its parent and thread root by URI and CID.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from atproto import Client, models

from classifiers.triager import Triager
from connectors.bluesky import native_id, native_uri
from connectors.replying import reply_senders
from dashboards.api import create_app
from dashboards.auth import make_account
from pipeline.errors import ConfigError, TransientError, TriageError
from pipeline.queue.agents import AgentProfile, Agents
from pipeline.settings import Settings
from pipeline.store.embedded import EmbeddedStore
from tests.dashboard_server import served
from tests.helpers import make_post

pytestmark = pytest.mark.pds
POST = "app.bsky.feed.post"
Sender = Callable[[str, str], Callable[[str, str], str]]
"""Builds the reply method for a handle and an app password."""


class Account:
    """An account made on the PDS, with its own logged-in client."""

    def __init__(self, url: str, handle: str) -> None:
        self.handle = handle
        self.client = Client(base_url=url)
        created = self.client.com.atproto.server.create_account(
            models.ComAtprotoServerCreateAccount.Data(
                handle=handle, email=f"{handle}@example.com", password="account-password"
            )
        )
        self.did = created.did
        self.client.login(handle, "account-password", fetch_bsky_profile=False)

    def post(
        self, text: str, parent: Any = None, root: Any = None
    ) -> models.AppBskyFeedPost.CreateRecordResponse:
        reply_to = None
        if parent is not None:
            reply_to = models.AppBskyFeedPost.ReplyRef(
                parent=models.create_strong_ref(parent), root=models.create_strong_ref(root)
            )
        return self.client.send_post(text, profile_identify=self.did, reply_to=reply_to)

    def app_password(self) -> str:
        created = self.client.com.atproto.server.create_app_password(
            models.ComAtprotoServerCreateAppPassword.Data(name="social-triage")
        )
        return str(created.password)


def stored(url: str, native: str) -> dict[str, Any]:
    """The record behind a native id, as the PDS serves it (``com.atproto.repo.getRecord``)."""
    did, collection, rkey = native_uri(native).removeprefix("at://").split("/")
    answer = httpx.get(
        f"{url}/xrpc/com.atproto.repo.getRecord",
        params={"repo": did, "collection": collection, "rkey": rkey},
    )
    answer.raise_for_status()
    record: dict[str, Any] = answer.json()
    return record


def ref(created: Any) -> dict[str, str]:
    return {"uri": str(created.uri), "cid": str(created.cid)}


def named(reply: dict[str, Any], which: str) -> dict[str, str]:
    """A stored reply's parent or root, by URI and CID (its ``$type`` aside)."""
    strong: dict[str, str] = reply["value"]["reply"][which]
    return {"uri": strong["uri"], "cid": strong["cid"]}


@pytest.fixture
def customer(pds_url: str, unique: str) -> Account:
    # a handle's first label on the PDS's own domain is at most 18 characters
    return Account(pds_url, f"c{unique}.test")


@pytest.fixture
def brand(pds_url: str, unique: str) -> Account:
    return Account(pds_url, f"b{unique}.test")


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[EmbeddedStore]:
    store = EmbeddedStore(tmp_path / "store.sqlite3")
    yield store
    store.close()


@pytest.fixture
def brand_sender(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedded: EmbeddedStore
) -> Sender:
    """The Bluesky reply method exactly as the composition roots get it, for a handle and an
    app password (which goes in the secrets folder)."""

    def build(handle: str, password: str) -> Callable[[str, str], str]:
        secrets = tmp_path / "secrets"
        secrets.mkdir(exist_ok=True)
        (secrets / "triage_bluesky_app_password").write_text(password)
        monkeypatch.setenv("TRIAGE_SECRETS_DIR", str(secrets))
        monkeypatch.setenv("TRIAGE_BLUESKY_HANDLE", handle)
        return reply_senders(Settings.from_environment(), embedded)["bluesky"]

    return build


def test_reply_lands_in_the_customers_thread_and_keeps_its_root(
    pds_url: str,
    customer: Account,
    brand: Account,
    brand_sender: Sender,
) -> None:
    assert Settings.from_environment().bluesky_pds_url == pds_url
    send = brand_sender(brand.handle, brand.app_password())
    post = customer.post("@acme my order 1234 never arrived")

    first = send(native_id(str(post.uri)), "Sorry about that! We're looking into order 1234.")

    assert ":" not in first  # a native id
    reply = stored(pds_url, first)
    assert reply["uri"] == native_uri(first)
    assert reply["uri"].startswith(f"at://{brand.did}/{POST}/")
    assert reply["value"]["text"] == "Sorry about that! We're looking into order 1234."
    assert named(reply, "parent") == ref(post)
    assert named(reply, "root") == ref(post)

    # The customer answers the brand; the brand's answer to that stays in the same thread.
    answered = models.ComAtprotoRepoStrongRef.Main(uri=reply["uri"], cid=reply["cid"])
    follow_up = customer.post("Still nothing today.", parent=answered, root=post)
    second = send(native_id(str(follow_up.uri)), "It ships tomorrow, with tracking by email.")

    again = stored(pds_url, second)
    assert again["uri"].startswith(f"at://{brand.did}/{POST}/")
    assert again["value"]["text"] == "It ships tomorrow, with tracking by email."
    assert named(again, "parent") == ref(follow_up)
    assert named(again, "root") == ref(post)


def test_reply_failures_are_one_line_and_say_whether_to_retry(
    customer: Account, brand: Account, brand_sender: Sender
) -> None:
    post = customer.post("@acme is the store open on Sunday?")
    native = native_id(str(post.uri))

    wrong = brand_sender(brand.handle, "aaaa-bbbb-cccc-dddd")
    with pytest.raises(ConfigError, match="refused the app password") as refused:
        wrong(native, "Yes, 10 to 4.")
    assert "\n" not in str(refused.value)

    send = brand_sender(brand.handle, brand.app_password())
    with pytest.raises(TriageError, match="refused the reply") as too_long:
        send(native, "Yes! " * 100)  # 500 characters: over Bluesky's 300
    assert not isinstance(too_long.value, TransientError)
    assert "\n" not in str(too_long.value)

    with pytest.raises(TriageError, match="not the id of a Bluesky post"):
        send("1234567890", "Yes, 10 to 4.")

    customer.client.delete_post(str(post.uri))
    with pytest.raises(TriageError, match="refused the reply") as gone:
        send(native, "Yes, 10 to 4.")
    assert not isinstance(gone.value, TransientError)


def test_an_unreachable_pds_is_a_retryable_error(
    brand_sender: Sender, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as closed:  # a loopback port that nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("TRIAGE_BLUESKY_PDS_URL", f"http://127.0.0.1:{port}")
    send = brand_sender("acme.test", "aaaa-bbbb-cccc-dddd")
    with pytest.raises(TransientError, match="did not take the reply"):
        send("did%3Aplc%3Aabc/app.bsky.feed.post/3k", "Hello")


def test_the_api_answers_a_refused_reply_in_one_line(
    customer: Account,
    brand: Account,
    brand_sender: Sender,
    embedded: EmbeddedStore,
    triager: Triager,
) -> None:
    """An agent resolving an item whose post the customer deleted gets the provider's refusal
    as a 422 with one line, and the item stays theirs to answer otherwise."""
    brand_sender(brand.handle, brand.app_password())  # the settings the API reads
    post = customer.post("@acme my parcel never arrived and nobody answers my emails")
    native = native_id(str(post.uri))
    embedded.ensure_schema()
    embedded.write_batch(
        triager.triage(
            [make_post(0, source="bluesky").model_copy(update={"native_id": native})],
            datetime.now(UTC),
        )
    )
    embedded.save_user(make_account("ana", "agent password", ["agent"]))
    Agents(embedded).put(AgentProfile(name="ana"))
    customer.client.delete_post(str(post.uri))
    # served for real: Starlette's TestClient decodes a path twice, a server does it once
    with (
        served(create_app(embedded, Settings.from_environment())) as url,
        httpx.Client(base_url=url) as client,
    ):
        csrf = client.post("/api/v1/login", json={"name": "ana", "password": "agent password"})
        headers = {"X-CSRF-Token": csrf.json()["csrf_token"]}
        item = client.post("/api/v1/queue/next", headers=headers).json()["item"]
        path = f"/api/v1/items/{quote(item['id'], safe='')}"  # one path segment, as for any id
        refused = client.post(f"{path}/resolve", headers=headers, json={"reply": "So sorry!"})
        assert refused.status_code == 422, refused.text
        detail = refused.json()["detail"]
        assert "refused the reply" in detail and "\n" not in detail
        assert client.get(path).json()["item"]["status"] == "claimed"
