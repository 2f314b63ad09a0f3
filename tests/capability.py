"""A test that needs something the machine may lack (unshare, a mount namespace, systemd-analyze's offline
scoring) skips without it — but never in CI: `.ci/run` sets SESSION_SYNCD_TESTS_STRICT=1, and there a
missing capability fails the test with the same reason, so no test can pass there without asserting."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

STRICT_ENV = "SESSION_SYNCD_TESTS_STRICT"


def missing(reason: str) -> NoReturn:
    if os.environ.get(STRICT_ENV):
        pytest.fail(f"{reason} ({STRICT_ENV} is set: this machine must be able to run the test)", pytrace=False)
    pytest.skip(reason)
