"""Fixtures for plugin tests: fresh managers (``fake_dist`` lives in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from xgamma.plugin import refresh_plugins


@pytest.fixture(autouse=True)
def _fresh_session_registry() -> Iterator[None]:
    """No test sees (or leaks) a cached manager/registry built under another sys.path."""
    refresh_plugins()
    yield
    refresh_plugins()
