"""Fixtures for plugin tests: fresh managers, the example plugin really installed (``fake_dist`` lives in
tests/conftest.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from xgamma.plugin import refresh_plugins

#: The example plugin's project, which `example_site` builds (test_example_plugin.py also has it).
EXAMPLE = Path(__file__).resolve().parents[2] / "plugins" / "xgamma-example"


@pytest.fixture(autouse=True)
def _fresh_session_registry() -> Iterator[None]:
    """No test sees (or leaks) a cached manager/registry built under another sys.path."""
    refresh_plugins()
    yield
    refresh_plugins()


@pytest.fixture(scope="session")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin built and installed with pip into a private folder (its path)."""
    target = tmp_path_factory.mktemp("example-site")
    # Build from a copy, so that no build artifact (an egg-info would itself be found by
    # importlib.metadata) can ever land in the repository.
    source = tmp_path_factory.mktemp("example-src") / "xgamma-example"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-cache-dir", "--quiet",
         "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert list(target.glob("xgamma_example-0.1.0.dist-info/entry_points.txt"))
    return target


@pytest.fixture
def installed(example_site: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`example_site` on ``sys.path`` for one test, with the plugin registry refreshed."""
    monkeypatch.syspath_prepend(str(example_site))
    # The plugin may also be installed in the environment and already imported from there:
    # forget those modules, so that this fresh build is the one imported.
    for module in [m for m in sys.modules if m == "xgamma_example" or m.startswith("xgamma_example.")]:
        monkeypatch.delitem(sys.modules, module)
    refresh_plugins()
    return example_site
