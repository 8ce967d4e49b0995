"""HDU class -> IRF reader mapping (the plugin system registers these built-ins)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from xgamma.exceptions import IRFError

__all__ = ["builtin_irf_readers", "read_irf"]

IRFReader = Callable[[Path, "str | int"], Any]


def builtin_irf_readers() -> dict[str, IRFReader]:
    """Readers of the GADF IRF HDU classes that xgamma implements (listed in `xgamma.plugin.builtins`).

    Returns
    -------
    readers : dict
        ``{hdu_class: reader}`` where ``reader(path, hdu)`` returns the IRF object.
    """
    from xgamma.plugin import builtins
    from xgamma.plugin.types import load_reference

    return {entry.name: load_reference(entry.target) if isinstance(entry.target, str) else entry.target
            for entry in builtins.xgamma_irf_readers()}


def read_irf(
    path: str | Path,
    hdu: str | int,
    hdu_class: str,
    *,
    readers: Mapping[str, IRFReader] | None = None,
) -> Any:
    """Read an IRF HDU with the reader registered for its HDU class.

    Parameters
    ----------
    path : str or Path
        FITS file.
    hdu : str or int
        HDU name or index.
    hdu_class : str
        GADF HDU class (``aeff_2d``, ``bkg_3d``, ``psf_table``, ...), case-insensitive.
    readers : mapping, optional
        HDU class -> reader; default `builtin_irf_readers`.

    Raises
    ------
    IRFError
        Unknown HDU class (the message lists the known ones), or the reader's own errors
        (missing file, HDU, column).
    """
    key = str(hdu_class).strip().lower()
    if readers is not None:
        if key not in readers:
            raise IRFError(
                f"unknown IRF HDU class {hdu_class!r} (HDU {hdu!r} of {path}); known classes: {sorted(readers)}"
            )
        return readers[key](Path(path), hdu)
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        stat = None
    if stat is None:  # let the reader raise its "file not found" error
        return _call_reader(key, path, hdu)
    # Many observations share one IRF file (CTA): read each (file version, HDU) once per process.
    # The cached object is frozen (read-only arrays) and each caller gets its own shallow copy, so
    # no caller (nor dask worker thread) can change what another one reads.
    return _own_copy(_read_cached(str(path.resolve()), stat.st_mtime_ns, stat.st_size, hdu, key))


def _registry_reader(key: str, path: Path, hdu: str | int) -> IRFReader:
    from xgamma.exceptions import PluginError
    from xgamma.plugin.session import get_registry

    try:
        return get_registry().get_irf_reader(key)
    except IRFError as error:
        if isinstance(error, PluginError):
            raise
        raise IRFError(f"unknown IRF HDU class {key!r} (HDU {hdu!r} of {path}): {error}") from None


def _call_reader(key: str, path: Path, hdu: str | int) -> Any:
    """Read with the registered reader; a plugin's reader that raises is named with its plugin."""
    from xgamma.plugin.blame import plugin_of
    from xgamma.plugin.types import IRFPluginError

    reader = _registry_reader(key, path, hdu)
    plugin = plugin_of(reader)
    if plugin is None:  # a built-in reader: its errors already name the file, HDU and column
        return reader(path, hdu)
    try:
        return reader(path, hdu)
    except Exception as error:  # any failure of third-party code, reported as the plugin's
        raise IRFPluginError(f"IRF reader {key!r} from {plugin.describe()} failed on HDU {hdu!r} of {path}: "
                             f"{type(error).__name__}: {error}") from error


@lru_cache(maxsize=64)
def _read_cached(path: str, mtime_ns: int, size: int, hdu: str | int, key: str) -> Any:
    irf = _call_reader(key, Path(path), hdu)
    _freeze(irf, set())
    return irf


def _freeze(value: Any, seen: set[int]) -> None:
    """Make every numpy array reachable from ``value``'s attributes read-only (in place)."""
    import numpy as np

    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, np.ndarray):
        value.flags.writeable = False
    elif isinstance(value, dict):
        for item in value.values():
            _freeze(item, seen)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _freeze(item, seen)
    elif hasattr(value, "__dict__") and not isinstance(value, type):
        for item in vars(value).values():
            _freeze(item, seen)


def _own_copy(irf: Any) -> Any:
    """A shallow copy of a cached IRF with its own dicts (``meta``): attributes set on it, or entries
    put in its dicts, stay with the caller; its arrays are the cache's, read-only."""
    import copy

    out = copy.copy(irf)
    if hasattr(out, "__dict__"):
        for name, value in vars(out).items():
            if isinstance(value, dict):
                out.__dict__[name] = dict(value)  # (frozen dataclasses too)
    return out
