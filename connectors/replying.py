"""The connectors that can answer a customer, built from the settings for their reply methods.

X answers a tweet id, Reddit a fullname, Bluesky an AT URI (with the brand's app password) and
Mastodon a status (in reply, with the original's visibility), each only when its credentials are
configured. The
composition roots (the ``triage`` command and the API app) hand these to the queue's
``Repliers``, so the queue never imports a connector.
"""

from __future__ import annotations

from collections.abc import Callable

from pipeline.bus.memory import InProcessBus
from pipeline.settings import Settings
from pipeline.store.interface import Store

ReplySender = Callable[[str, str], str]
"""A connector's ``reply(native id, text)``, returning the new message's id."""


def reply_senders(settings: Settings, store: Store) -> dict[str, ReplySender]:
    """The reply method of each source whose connector is configured, by source name."""
    senders: dict[str, ReplySender] = {}
    keys = (
        settings.x_consumer_key,
        settings.x_consumer_secret,
        settings.x_access_token,
        settings.x_access_token_secret,
    )
    # The connectors are built only for their reply methods: nothing is read or produced.
    producer = InProcessBus().producer()
    if all(k is not None for k in keys):
        import tweepy

        from connectors.x import XConnector

        ck, cs, at, ats = (k.get_secret_value() for k in keys if k is not None)
        client = tweepy.Client(
            consumer_key=ck, consumer_secret=cs, access_token=at, access_token_secret=ats
        )
        senders["x"] = XConnector(producer, client, query="replies", store=store).reply
    reddit_keys = (
        settings.reddit_client_id,
        settings.reddit_client_secret,
        settings.reddit_username,
        settings.reddit_password,
    )
    if all(k is not None for k in reddit_keys):
        import praw

        from connectors.reddit import RedditConnector

        cid, csec, user, pw = (k.get_secret_value() for k in reddit_keys if k is not None)
        reddit = praw.Reddit(
            client_id=cid,
            client_secret=csec,
            username=user,
            password=pw,
            user_agent=settings.reddit_user_agent,
        )
        senders["reddit"] = RedditConnector(producer, reddit, subreddits=[], store=store).reply
    if settings.bluesky_handle and settings.bluesky_app_password is not None:
        from connectors.bluesky import BlueskyReplier

        password = settings.bluesky_app_password.get_secret_value()
        replier = BlueskyReplier(settings.bluesky_handle, password, settings.bluesky_pds_url)
        senders["bluesky"] = replier.reply
    if settings.mastodon_api_base_url and settings.mastodon_access_token is not None:
        from mastodon import Mastodon

        from connectors.mastodon import MastodonConnector

        client = Mastodon(
            api_base_url=settings.mastodon_api_base_url,
            access_token=settings.mastodon_access_token.get_secret_value(),
        )
        mastodon = MastodonConnector(producer, client, store, mentions=True, stream=False)
        senders["mastodon"] = mastodon.reply
    return senders
