"""Shared fixtures. Data tests FAIL (never skip) when the DL3 data cannot be found."""

from __future__ import annotations

import itertools
import os
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

_counter = itertools.count()

# Hypothesis keeps its example database in the folder pytest starts in unless told otherwise: from
# any other folder (a data folder, a home) the suite would leave a .hypothesis/ there. Keep it in
# the repository, where a run from its root puts it anyway. Read at Hypothesis's first use of it.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(Path(__file__).resolve().parents[1] / ".hypothesis"))


def pytest_addoption(parser):
    parser.addoption("--validation", action="store_true",
                     help="also run the tests marked 'validation' (the full validation matrix and pull "
                          "studies of tests/validation: about an hour on 2 cores)")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``validation`` are deselected (listed as such, never skipped) without --validation."""
    if config.getoption("--validation"):
        return
    selected = [item for item in items if item.get_closest_marker("validation") is None]
    if len(selected) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item.get_closest_marker("validation")])
        items[:] = selected


@pytest.fixture(scope="session")
def data_dir(pytestconfig: pytest.Config) -> Path:
    """Root of the shared DL3 data (``$XGAMMA_DATA``); fails loudly when it is unset or missing.

    A relative path is taken from the folder pytest was started in, whatever folder a test has
    moved to when this fixture is first requested."""
    value = os.environ.get("XGAMMA_DATA")
    if not value:
        pytest.fail("XGAMMA_DATA is not set: export XGAMMA_DATA=/path/to/shared/data", pytrace=False)
    path = (pytestconfig.invocation_params.dir / Path(value).expanduser()).resolve()
    if not (path / "cta-1dc").is_dir() or not (path / "hess-dl3-dr1").is_dir():
        pytest.fail(f"XGAMMA_DATA={value} does not hold cta-1dc/ and hess-dl3-dr1/", pytrace=False)
    return path


@pytest.fixture(scope="session")
def cta_datastore_dir(data_dir: Path) -> Path:
    return data_dir / "cta-1dc" / "index" / "gps"


@pytest.fixture(scope="session")
def hess_datastore_dir(data_dir: Path) -> Path:
    return data_dir / "hess-dl3-dr1"


@pytest.fixture
def block_size(request):
    """Run a test with the default block size, or (0) with every chunk kept and overlapped.

    Small test maps fit in one block of ``xgamma.block_size`` values; 0 keeps the caller's chunks
    as blocks, so that chunk invariance is proven for the overlapped path (blocks with neighbours) too.
    """
    import dask

    value = request.param
    if value is None:
        yield value
        return
    with dask.config.set({"xgamma.block_size": value}):
        yield value


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
