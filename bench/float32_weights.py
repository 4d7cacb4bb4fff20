"""What storing the heads' SVM weights in float32 did to the shipped heads' decisions.

The last bundle built with float64 weights (``20261204141611-9b861ee3``) and the script that
built it are read from git history; each head is scored on the rows that build held out, once as
it was and once with its weights cast to float32, and the changed predictions counted. A second
table scores that build's heads on each source's held-out rows alone, the figures later builds
record in docs/models.md, so that the two builds compare source by source.

    .venv/bin/python bench/float32_weights.py ../shared/data
"""

from __future__ import annotations

import copy
import importlib.util
import io
import subprocess
import sys
import tempfile
from pathlib import Path

import joblib
import numpy as np
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from classifiers.text import TextPreparer  # noqa: E402

COMMIT = "f756560"  # the last commit whose tree has the float64 bundle
BUNDLE = "classifiers/models/triage-20261204141611-9b861ee3.joblib"


def from_git(path: str) -> bytes:
    return subprocess.run(
        ["git", "show", f"{COMMIT}:{path}"], cwd=ROOT, check=True, capture_output=True
    ).stdout


def main() -> None:
    data = Path(sys.argv[1])
    with tempfile.NamedTemporaryFile(suffix=".py") as script:
        script.write(from_git("scripts/build_models.py"))
        script.flush()
        spec = importlib.util.spec_from_file_location("old_build", script.name)
        assert spec is not None and spec.loader is not None
        old = importlib.util.module_from_spec(spec)
        sys.modules["old_build"] = old
        spec.loader.exec_module(old)
    bundle = joblib.load(io.BytesIO(from_git(BUNDLE)))
    print("| head | held out | changed predictions | macro-F1 float64 | float32 | max prob diff |")
    print("|---|---|---|---|---|---|")
    by_source = []
    for head in old.heads(data, False):
        texts = [t for t, _ in head.rows if t.strip()]
        labels = [y for t, y in head.rows if t.strip()]
        origin = {}
        for source, count in head.sources.items():  # rows were added source by source, in order
            for text, _ in head.rows[len(origin) : len(origin) + count]:
                origin.setdefault(text, source)
        _, test = train_test_split(
            list(range(len(labels))), test_size=0.2, random_state=0, stratify=labels
        )
        truth = [labels[i] for i in test]
        model = bundle.own_heads_[head.task]
        Z = model.featurizer_.transform(TextPreparer().prepare([texts[i] for i in test]))
        wide = model.proba_of_features(Z)
        narrow_model = copy.deepcopy(model)
        narrow_model.svm_.coef_ = narrow_model.svm_.coef_.astype(np.float32)
        narrow_model.svm_.intercept_ = narrow_model.svm_.intercept_.astype(np.float32)
        narrow = narrow_model.proba_of_features(Z)
        p64, p32 = model.classes_[wide.argmax(1)], model.classes_[narrow.argmax(1)]
        print(
            f"| {head.task} | {len(truth):,} | {int((p64 != p32).sum())} | "
            f"{f1_score(truth, p64, average='macro'):.4f} | "
            f"{f1_score(truth, p32, average='macro'):.4f} | {np.abs(wide - narrow).max():.1e} |"
        )
        held_texts = [texts[i] for i in test]
        for source in head.sources:
            ids = [k for k, t in enumerate(held_texts) if origin.get(t) == source]
            if ids:
                y, p = [truth[k] for k in ids], p64[ids]
                by_source.append(
                    f"| {head.task} | {source} | {len(ids):,} | "
                    f"{np.mean(np.asarray(y) == p):.3f} | {f1_score(y, p, average='macro'):.3f} |"
                )
    print("\n| head | source | held out | accuracy | macro-F1 |\n|---|---|---|---|---|")
    print("\n".join(by_source))


if __name__ == "__main__":
    main()
