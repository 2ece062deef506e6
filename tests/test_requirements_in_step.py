"""requirements.txt (what the README's install command reads) and pyproject.toml (what `pip install .`
reads) name the same dependencies, so neither way of installing gets a different app."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _normal(requirement: str) -> str:
    return re.sub(r"\s+", "", requirement.split("#", 1)[0]).replace("'", '"').lower()


def test_requirements_and_pyproject_name_the_same_dependencies():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    listed = [line for line in (ROOT / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.lstrip().startswith(("#", "-"))]
    assert sorted(map(_normal, declared)) == sorted(map(_normal, listed))
