"""The model registry in the store, so that every process and machine of a deployment shares
one list of bundle versions and one active version: on MongoDB the index is a document of
``model_registry`` and the bundles are GridFS files (bucket ``models``); in the embedded store
both are SQLite tables. Kept apart from the stores' own code: the registry is the classifiers'
concern, the store only lends it room.

``shared_registry`` gives the registry the worker, the API and the CLI use: a folder when
``TRIAGE_MODELS_DIR`` names one (as before), otherwise the store's, which starts on a fresh store
with the packaged bundle as its first version.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from typing import Any

import gridfs
from pymongo.database import Database

from classifiers.registry import PACKAGED, Registry
from classifiers.triager import MODEL_NAME
from pipeline.settings import Settings
from pipeline.store.interface import Store
from pipeline.store.mongo import _transient as transient

INDEX_ID = "index"


class MongoModels:
    """Registry room on MongoDB: the index as JSON text in one document (version metadata has
    keys MongoDB would refuse), bundles in GridFS, where a new file of a name supersedes the
    old (the newest upload is read)."""

    def __init__(self, db: Database[dict[str, Any]]) -> None:
        self._index = db["model_registry"]
        self._files = gridfs.GridFSBucket(db, bucket_name="models")

    # A lost server is a TransientError here as everywhere in the store: the worker, reading
    # the index before every batch, pauses and replays instead of dying.
    def read_index(self) -> dict[str, Any] | None:
        with transient("reading the model registry"):
            doc = self._index.find_one({"_id": INDEX_ID})
        return None if doc is None else dict(json.loads(doc["json"]))

    def write_index(self, index: dict[str, Any]) -> None:
        with transient("writing the model registry"):
            self._index.replace_one({"_id": INDEX_ID}, {"json": json.dumps(index)}, upsert=True)

    def read_file(self, name: str) -> bytes | None:
        with transient(f"reading model file {name}"):
            try:
                return bytes(self._files.open_download_stream_by_name(name).read())
            except gridfs.errors.NoFile:  # a PyMongoError too: answered before transient sees it
                return None

    def write_file(self, name: str, data: bytes) -> None:
        with transient(f"writing model file {name}"):
            self._files.upload_from_stream(name, data)


class EmbeddedModels:
    """Registry room in the embedded store's SQLite file, on its connection and lock."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock) -> None:
        self._db, self._lock = db, lock
        with self._lock, self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS model_registry (id TEXT PRIMARY KEY, json TEXT)"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS model_files (name TEXT PRIMARY KEY, data BLOB)"
            )

    def read_index(self) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT json FROM model_registry WHERE id = ?", (INDEX_ID,)
            ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def write_index(self, index: dict[str, Any]) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO model_registry (id, json) VALUES (?, ?)",
                (INDEX_ID, json.dumps(index)),
            )

    def read_file(self, name: str) -> bytes | None:
        with self._lock:
            row = self._db.execute(
                "SELECT data FROM model_files WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def write_file(self, name: str, data: bytes) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO model_files (name, data) VALUES (?, ?)", (name, data)
            )


def store_registry(store: Store) -> Registry:
    """The store's registry, holding the packaged bundle if it held nothing yet."""
    from pipeline.store.embedded import EmbeddedStore
    from pipeline.store.mongo import MongoStore

    if isinstance(store, MongoStore):
        backend: MongoModels | EmbeddedModels = MongoModels(store._db)
    elif isinstance(store, EmbeddedStore):
        backend = EmbeddedModels(store._db, store._lock)
    else:  # a store of another kind (a test's wrapper) has no room: the packaged registry
        return Registry(PACKAGED)
    registry = Registry(PACKAGED, backend)
    registry.seed_from(Registry(PACKAGED), MODEL_NAME)
    return registry


def shared_registry(settings: Settings, store: Store) -> Registry:
    if settings.models_dir is not None:
        return Registry(settings.models_dir)
    return store_registry(store)
