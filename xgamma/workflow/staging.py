"""An output folder whose products appear together when a run succeeds, or not at all.

A run writes its products into a hidden staging folder inside the output folder
(``.xgamma-run-<pid>-<random>/``). When every stage has succeeded they are published: the
products of an earlier run are removed (those its manifest lists, and files with product names),
the new ones are moved in (renames on one file system), and the manifest ``products.json`` is
written last. The manifest lists the files with their sizes, the xgamma and library versions and
the time; a folder without it holds no complete run.

A failed or interrupted run removes its staging folder and leaves the output folder as it was (an
earlier complete run stays complete). A killed run (SIGKILL, power loss) leaves its staging
folder behind; the next run into the folder removes it, and hidden ``.*.part`` files of
interrupted atomic writes, unless the process that made it is still alive, in which case the
folder is refused as busy.

The survey workflow builds on this: a resumable run can keep its staging folder and the manifest
tells a complete output from a partial one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from xgamma.exceptions import XgammaError

__all__ = ["StagedOutput", "MANIFEST", "read_manifest"]

#: The manifest of a complete run, written last.
MANIFEST = "products.json"
_STAGING_PREFIX = ".xgamma-run-"
_VERSIONS = ("numpy", "astropy", "xarray", "dask", "scipy", "iminuit")


def read_manifest(output: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest of the run published in ``output``, or None (no complete run there)."""
    path = Path(output) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    from xgamma.version import __version__

    found = {"xgamma": __version__}
    for name in _VERSIONS:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Ctrl-C (SIGINT) and SIGTERM wait until the block is done, then act as they would have.

    Publishing swaps the products of two runs: an interruption in the middle would leave neither.
    Only the main thread can handle signals; elsewhere the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, lambda number, frame: received.append(number))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in received[:1]:
            handler = previous[signum]
            if callable(handler):
                handler(signum, None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)


class StagedOutput:
    """Context manager staging the products of one run and publishing them together.

    Parameters
    ----------
    output : path-like
        The output folder (created if needed).
    product_names : iterable of str
        File or folder names the run's products may have: such entries left by an earlier run
        without a manifest are removed when the new products are published, so that no stale
        product stays beside new ones.

    Examples
    --------
    >>> with StagedOutput("out", product_names=["maps.fits"]) as staging:  # doctest: +SKIP
    ...     write_maps(maps, staging.path / "maps.fits")
    >>> staging.final(staging.path / "maps.fits")                          # doctest: +SKIP
    PosixPath('out/maps.fits')
    """

    def __init__(self, output: str | os.PathLike, *, product_names: Iterable[str] = ()) -> None:
        self.output = Path(output)
        self.product_names = frozenset(product_names)
        self.path: Path | None = None
        self._staging_path: Path | None = None

    def __enter__(self) -> StagedOutput:
        self.output.mkdir(parents=True, exist_ok=True)
        self._remove_leftovers()
        self.path = Path(tempfile.mkdtemp(prefix=f"{_STAGING_PREFIX}{os.getpid()}-", dir=self.output))
        self._staging_path = self.path
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._publish()
        finally:
            shutil.rmtree(self._staging_path, ignore_errors=True)

    def final(self, staged: str | os.PathLike) -> Path:
        """Where a file written into the staging folder is once published."""
        return self.output / Path(staged).relative_to(self._staging_path)

    def _remove_leftovers(self) -> None:
        for entry in self.output.iterdir():
            name = entry.name
            if name.startswith(_STAGING_PREFIX):
                pid = name[len(_STAGING_PREFIX):].split("-")[0]
                if pid.isdigit() and int(pid) != os.getpid() and _pid_alive(int(pid)):
                    raise XgammaError(f"another xgamma run (process {pid}) is writing into {self.output}; "
                                      f"wait for it, or remove {entry} if that process is not xgamma")
                _remove(entry)
            elif name.startswith(".") and name.endswith(".part"):
                _remove(entry)

    def _publish(self) -> None:
        staged = sorted(entry.name for entry in self._staging_path.iterdir())
        previous = read_manifest(self.output) or {}
        stale = set(previous.get("files", {})) | (self.product_names & {e.name for e in self.output.iterdir()})
        # Everything slow (versions look up package metadata) happens before the swap, so the
        # window in which the folder holds neither run is a few renames long.
        manifest = {
            "complete": True,
            "versions": _versions(),
            "files": {name: {"bytes": _size(self._staging_path / name)} for name in staged},
        }
        with _signals_deferred():
            # Without a manifest the folder holds no complete run while products are swapped.
            _remove(self.output / MANIFEST)
            for name in sorted(stale | set(staged)):
                _remove(self.output / name)
            for name in staged:
                os.replace(self._staging_path / name, self.output / name)
            manifest["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            tmp = self.output / f".{MANIFEST}.part"
            tmp.write_text(json.dumps(manifest, indent=2))
            os.replace(tmp, self.output / MANIFEST)
