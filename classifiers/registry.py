"""A model registry on disk: versioned artefacts with what they were trained on and how they did.

``registry.json`` records, per model name, every version (creation time, training-data hash,
settings, metrics) and the history of activations, so that promoting and rolling back are one
command each and every triaged post can name the exact version that judged it.
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import os
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import joblib
from sklearn.exceptions import InconsistentVersionWarning

from pipeline.errors import ConfigError

PACKAGED = Path(__file__).parent / "models"
XZ_MAGIC = b"\xfd7zXZ\x00"


def data_hash(rows: list[tuple[str, ...]]) -> str:
    digest = hashlib.sha256()
    for row in rows:
        digest.update("\x1f".join(row).encode())
        digest.update(b"\x1e")
    return digest.hexdigest()


class Backend(Protocol):
    """Where a registry keeps its index and its model files: a folder (``Folder``), or the
    store every process of a deployment shares (``pipeline.store.models``)."""

    def read_index(self) -> dict[str, Any] | None: ...

    def write_index(self, index: dict[str, Any]) -> None: ...

    def read_file(self, name: str) -> bytes | None: ...

    def write_file(self, name: str, data: bytes) -> None: ...


class Folder:
    """``registry.json`` and one joblib file a version, in a folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._index_path = self.root / "registry.json"

    def read_index(self) -> dict[str, Any] | None:
        if not self._index_path.exists():
            return None
        return dict(json.loads(self._index_path.read_text()))

    def write_index(self, index: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self._index_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self._index_path)

    def read_file(self, name: str) -> bytes | None:
        path = self.root / name
        return path.read_bytes() if path.is_file() else None

    def write_file(self, name: str, data: bytes) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / name).write_bytes(data)


class Registry:
    def __init__(self, root: Path = PACKAGED, backend: Backend | None = None) -> None:
        self.root = Path(root)
        self.backend: Backend = backend or Folder(self.root)

    def _index(self) -> dict[str, Any]:
        return self.backend.read_index() or {"models": {}}

    def _save(self, index: dict[str, Any]) -> None:
        self.backend.write_index(index)

    def register(
        self,
        name: str,
        model: Any,
        *,
        data_sha256: str,
        metrics: dict[str, Any],
        params: dict[str, Any],
        activate: bool = True,
        compress: int | tuple[str, int] = 3,
    ) -> str:
        """Keep ``model`` as a new version. ``compress`` is joblib's: zlib level 3 by default,
        quick to write; ``make models`` asks for xz, a fifth smaller, for the file it commits."""
        now = datetime.now(UTC)
        version = f"{now:%Y%m%d%H%M%S}-{data_sha256[:8]}"
        buffer = io.BytesIO()
        joblib.dump(model, buffer, compress=compress)
        self.backend.write_file(f"{name}-{version}.joblib", buffer.getvalue())
        index = self._index()
        entry = index["models"].setdefault(name, {"active": None, "history": [], "versions": {}})
        entry["versions"][version] = {
            "created_at": now.isoformat(),
            "data_sha256": data_sha256,
            "metrics": metrics,
            "params": {k: repr(v) for k, v in params.items()},
        }
        self._save(index)
        if activate:
            self.promote(name, version)
        return version

    def versions(self, name: str) -> dict[str, Any]:
        return dict(self._index()["models"].get(name, {}).get("versions", {}))

    def active(self, name: str) -> str | None:
        return self._index()["models"].get(name, {}).get("active")

    def promote(self, name: str, version: str) -> None:
        index = self._index()
        entry = index["models"].get(name)
        if entry is None or version not in entry["versions"]:
            raise ConfigError(f"model {name!r} has no version {version!r}")
        entry["active"] = version
        entry["history"].append(version)
        self._save(index)

    def rollback(self, name: str) -> str:
        index = self._index()
        history = index["models"].get(name, {}).get("history", [])
        if len(history) < 2:
            raise ConfigError(f"model {name!r} has no earlier active version to roll back to")
        history.pop()
        index["models"][name]["active"] = history[-1]
        self._save(index)
        return str(history[-1])

    def load(self, name: str, version: str | None = None) -> tuple[Any, str]:
        version = version or self.active(name)
        if version is None:
            raise ConfigError(f"no active {name!r} model in {self.root}; run `triage train`")
        data = self.backend.read_file(f"{name}-{version}.joblib")
        if data is None:
            raise ConfigError(f"model file {name}-{version}.joblib is missing; run `triage train`")
        if data.startswith(XZ_MAGIC):  # in one go: joblib reads xz in small pieces, ~1.4x slower
            data = lzma.decompress(data)
        with warnings.catch_warnings():
            warnings.simplefilter("error", InconsistentVersionWarning)
            try:
                return joblib.load(io.BytesIO(data)), version
            except InconsistentVersionWarning as exc:
                raise ConfigError(
                    f"{name}-{version}.joblib was saved by another scikit-learn version; "
                    "run `triage train`"
                ) from exc

    def seed_from(self, packaged: Registry, name: str) -> None:
        """On an empty registry, the packaged active version as the first version: a fresh
        store starts with the bundle the package ships."""
        if self.backend.read_index() is not None:
            return
        version = packaged.active(name)
        data = packaged.backend.read_file(f"{name}-{version}.joblib") if version else None
        if version is None or data is None:
            raise ConfigError(f"the packaged registry has no active {name!r} model")
        self.backend.write_file(f"{name}-{version}.joblib", data)
        entry = {"active": version, "history": [version], "versions": {
            version: packaged.versions(name)[version]
        }}
        self._save({"models": {name: entry}})
