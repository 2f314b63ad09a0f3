"""tests/capability.missing: a missing capability skips on a user's machine and fails where strict (CI)."""

from __future__ import annotations

import pytest

from capability import STRICT_ENV, missing


def test_a_missing_capability_skips_when_not_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STRICT_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="no frobnicator"):
        missing("no frobnicator")


def test_a_missing_capability_fails_when_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STRICT_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=f"no frobnicator .*{STRICT_ENV} is set"):
        missing("no frobnicator")
