"""Shared fixtures: a ServiceSpec rooted in a temp HOME, built the way `service install` builds it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from service.spec import ServiceSpec, build_spec


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h


@pytest.fixture
def env(home: Path) -> dict[str, str]:
    return {"HOME": str(home), "PATH": "/usr/bin:/bin"}


@pytest.fixture
def spec(env: dict[str, str]) -> ServiceSpec:
    return build_spec(None, env, sys.executable)[0]
