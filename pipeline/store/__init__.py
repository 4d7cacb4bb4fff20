"""The store: its interface, MongoDB (any MongoDB-wire server) and the embedded SQLite store.

``open_store`` picks the implementation from the settings: MongoDB when ``TRIAGE_MONGO_URI`` is
set, the embedded store otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.settings import Settings
    from pipeline.store.interface import Store


def open_store(settings: Settings) -> Store:
    if settings.mongo_uri is not None:
        from pipeline.store.mongo import MongoStore

        return MongoStore(settings.mongo_uri.get_secret_value(), settings.mongo_database)
    from pipeline.store.embedded import EmbeddedStore

    return EmbeddedStore(settings.embedded_db)
