"""requirements.lock, which the image installs from and `make audit` checks, satisfies every
requirement of pyproject.toml: a lock that drifted (fastapi 0.165 pinned while pyproject caps it
below 0.151) would build an image the tests never ran."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"requirements.lock: {line!r} is not pinned with =="
            pins[canonicalize_name(name)] = version.strip()
    return pins


def test_the_lock_satisfies_every_requirement_of_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    pins = locked()
    problems = []
    for line in wanted:
        requirement = Requirement(line)
        version = pins.get(canonicalize_name(requirement.name))
        if version is None:
            problems.append(f"{requirement.name} is not in requirements.lock")
        elif not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{requirement.name}=={version} breaks {requirement}")
    assert problems == [], "run `make lock`: " + "; ".join(problems)
