"""The wheel carries the data the code reads at run time, and building it prints no warnings.

A fresh install is the first thing a newcomer sees: setuptools' deprecation and "package would be
ignored" warnings read as a broken install, and a data folder missing from the wheel only shows
once someone runs the installed command. The wheel is built from a copy of the sources, so a
stale ``build/`` in the checkout can neither hide nor add a file, and without build isolation,
so the test needs no network (the dev extra brings the setuptools the build asks for).
"""

from __future__ import annotations

import email.parser
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["pipeline", "connectors", "classifiers", "flows", "dashboards"]
DATA_FOLDERS = [
    "classifiers/models",
    "classifiers/seed",
    "classifiers/lexicons",
    "connectors/samples",
    "dashboards/templates",
    "dashboards/static",
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """(the source copy, the wheel, pip's output)."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    for name in PACKAGES:
        shutil.copytree(
            ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    out = work / "dist"
    run = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    (wheel,) = out.glob("social_triage-*.whl")
    return src, wheel, output


def test_build_prints_no_warnings(built: tuple[Path, Path, str]) -> None:
    _, _, output = built
    noisy = [
        line
        for line in output.splitlines()
        if any(word in line.lower() for word in ("warning", "deprecat", "would be ignored"))
    ]
    assert noisy == [], "\n".join(noisy)


def test_wheel_carries_every_data_file(built: tuple[Path, Path, str]) -> None:
    src, wheel, _ = built
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in DATA_FOLDERS:
        on_disk = {p.relative_to(src).as_posix() for p in (src / folder).rglob("*") if p.is_file()}
        assert on_disk, f"{folder} is empty in the sources"
        assert on_disk <= names, f"missing from the wheel: {sorted(on_disk - names)}"
        assert f"{folder}/__init__.py" not in names  # data, not a package
    # The active model of the registry the wheel ships is in the wheel too.
    registry = json.loads(zipfile.ZipFile(wheel).read("classifiers/models/registry.json"))
    active = registry["models"]["triage"]["active"]
    assert f"classifiers/models/triage-{active}.joblib" in names
    for page in ("dashboards/templates/base.html", "dashboards/static/app.css"):
        assert page in names


def test_wheel_carries_every_module_and_the_licence(built: tuple[Path, Path, str]) -> None:
    src, wheel, _ = built
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = email.parser.Parser().parsestr(zf.read(metadata_name).decode())
    modules = {
        p.relative_to(src).as_posix() for name in PACKAGES for p in (src / name).rglob("*.py")
    }
    assert modules <= names, f"missing from the wheel: {sorted(modules - names)}"
    assert metadata["License-Expression"] == "Apache-2.0"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
