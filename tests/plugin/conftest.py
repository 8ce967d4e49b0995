"""Fixtures for plugin tests: fresh managers and fake installed distributions."""

from __future__ import annotations

import itertools
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from xgamma.plugin import refresh_plugins

_counter = itertools.count()


@pytest.fixture(autouse=True)
def _fresh_session_registry() -> Iterator[None]:
    """No test sees (or leaks) a cached manager/registry built under another sys.path."""
    refresh_plugins()
    yield
    refresh_plugins()


@pytest.fixture
def fake_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Install a fake distribution: ``<dist>-<version>.dist-info`` with an ``xgamma`` entry point.

    ``fake_dist(dist, ep_name, source)`` writes ``source`` as a fresh module (unique name),
    declares it as entry point ``ep_name`` and puts the directory on ``sys.path``. Returns the
    module name.
    """
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    monkeypatch.syspath_prepend(str(site))
    created: list[str] = []

    def make(dist: str, ep_name: str, source: str, *, version: str = "1.2") -> str:
        module = f"_xgamma_fake_{dist.replace('-', '_')}_{next(_counter)}"
        (site / f"{module}.py").write_text(textwrap.dedent(source))
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[xgamma]\n{ep_name} = {module}\n")
        import importlib

        importlib.invalidate_caches()
        created.append(module)
        return module

    yield make
    for module in created:
        sys.modules.pop(module, None)
