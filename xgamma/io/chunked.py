"""Maps streamed to disk one spatial chunk at a time, resumably: zarr stores or folders of FITS tiles.

A `ChunkedStore` turns a lazy `xarray.Dataset` of maps (dask arrays chunked along ``lat`` and
``lon``) into one dask task per spatial chunk. Each task computes every variable of its chunk,
writes it (into the zarr arrays, or as one FITS file per tile) and then records a checksum of
what it wrote in a small marker file. Nothing is gathered on the client, so memory stays that of
the chunks in flight.

Resuming: `ChunkedStore.prepare` reopens a store left by an interrupted run, reads the markers and
checks each recorded chunk against the bytes on disk (CRC-32 of the values); only chunks missing
or failing the check are computed again. A store is complete when every chunk has a verified
marker; the caller then publishes it (`ChunkedStore.finish` removes the markers).
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr

from xgamma.exceptions import DataStoreError

__all__ = ["ChunkedStore", "FORMATS", "chunk_checksum"]

#: Output formats of `ChunkedStore`.
FORMATS = ("zarr", "fits-tiles")
SPATIAL = ("lat", "lon")


def chunk_checksum(values: np.ndarray) -> str:
    """CRC-32 of an array's values (C order), with its dtype and shape: ``"<f8(24, 256, 256):1a2b3c4d"``.

    A check against torn or corrupted writes, not against tampering: CRC-32 runs at several
    GB/s (a survey writes ~1.5 GB of cubes; BLAKE2b took ~2 s of it).
    """
    values = np.ascontiguousarray(values)
    crc = zlib.crc32(values.view(np.uint8).reshape(-1)) if values.size else 0
    return f"{values.dtype.str}{values.shape}:{crc:08x}"


def _compression() -> dict[str, Any]:
    """Zarr encoding of the map values: Blosc LZ4 with byte shuffle. On survey cubes (float64,
    smooth exposure and background) it writes ~2.5x faster than zarr 3's default Zstandard and
    ~20 % smaller; lossless either way. Zarr 2 (no ``zarr.codecs``) keeps its default."""
    try:
        from zarr.codecs import BloscCodec
    except ImportError:
        return {}
    return {"compressors": (BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"),)}


def _write_marker(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, path)


class ChunkedStore:
    """One product written chunk by chunk: a zarr store or a folder of FITS tiles.

    Parameters
    ----------
    dataset : `xarray.Dataset`
        Lazy maps with ``lat`` and ``lon`` dims; other dims are written whole.
    chunks : int or (int, int)
        Chunk size along (lat, lon) in pixels: the unit of writing, resuming and of FITS tiles.
    path : path-like
        The store (``*.zarr``) or tile folder to write.
    progress : path-like
        Folder of the chunk markers (kept out of the store; removed by `finish`).
    format : {"zarr", "fits-tiles"}
        Output format. Default is "zarr".

    Examples
    --------
    >>> store = ChunkedStore(maps, "out/maps.zarr", chunks=256, progress="out/.progress/maps")  # doctest: +SKIP
    >>> store.prepare()                     # creates or reopens, verifies written chunks  # doctest: +SKIP
    >>> dask.compute(*store.tasks())        # one task per chunk still to write            # doctest: +SKIP
    >>> store.finish()                                                                     # doctest: +SKIP
    """

    def __init__(self, dataset: xr.Dataset, path: str | os.PathLike, *, chunks: int | tuple[int, int],
                 progress: str | os.PathLike, format: Literal["zarr", "fits-tiles"] = "zarr") -> None:
        if format not in FORMATS:
            raise DataStoreError(f"output.format: unknown format {format!r}; use one of {list(FORMATS)}")
        missing = [dim for dim in SPATIAL if dim not in dataset.dims]
        if missing:
            raise DataStoreError(f"chunked output needs maps with dims {SPATIAL}, missing {missing}")
        sizes = {dim: min(int(size), dataset.sizes[dim]) for dim, size in zip(SPATIAL, np.broadcast_to(chunks, 2))}
        # Writers own whole chunks: one chunk size along lat and lon, whole along other dims.
        chunks = {**{d: -1 for d in dataset.dims if d not in SPATIAL}, **sizes}
        # Only the maps are chunked: the coordinates (pixel indices, energy edges) stay in memory.
        self.dataset = dataset.assign({name: var.chunk({d: chunks[d] for d in var.dims})
                                       for name, var in dataset.data_vars.items()})
        self.path = Path(path)
        self.progress = Path(progress)
        self.format = format
        self.chunk_sizes = sizes
        self.done: set[tuple[int, int]] = set()

    # ------------------------------------------------------------------ layout
    @property
    def n_chunks(self) -> tuple[int, int]:
        """Number of chunks along (lat, lon)."""
        return tuple(-(-self.dataset.sizes[d] // self.chunk_sizes[d]) for d in SPATIAL)

    def regions(self) -> Iterator[tuple[tuple[int, int], dict[str, slice]]]:
        """``((i, j), {"lat": slice, "lon": slice})`` of every chunk."""
        for i in range(self.n_chunks[0]):
            for j in range(self.n_chunks[1]):
                yield (i, j), self._region((i, j))

    def _marker(self, index: tuple[int, int]) -> Path:
        return self.progress / f"{index[0]}_{index[1]}.json"

    def _tile(self, index: tuple[int, int]) -> Path:
        return self.path / f"{self.path.name}_{index[0]:03d}_{index[1]:03d}.fits"

    # ------------------------------------------------------------------ prepare / resume
    def prepare(self) -> int:
        """Create the store, or reopen an interrupted one and verify its recorded chunks.

        Returns
        -------
        n_done : int
            Chunks already written and verified (they are skipped).
        """
        self.progress.mkdir(parents=True, exist_ok=True)
        if self.format == "fits-tiles":
            self.path.mkdir(parents=True, exist_ok=True)
        elif not (self.path / "zarr.json").is_file() or not self._store_matches():
            self._create_zarr()
            for marker in self.progress.glob("*.json"):
                marker.unlink()
        self.done = {index for index, _ in self.regions() if self._verified(index)}
        return len(self.done)

    def _template(self) -> xr.Dataset:
        from xgamma.io.zarr_maps import zarr_dataset

        return zarr_dataset(self.dataset)

    def _create_zarr(self) -> None:
        if self.path.exists():
            shutil.rmtree(self.path)
        import dask.array as da

        template = self._template()
        # The map values are written chunk by chunk later: the template's variables are one-chunk
        # placeholders, so that to_zarr(compute=False) makes no graph of the real arrays (0.1 s a store).
        template = template.assign({name: var.copy(data=da.empty(var.shape, dtype=var.dtype, chunks=-1))
                                    for name, var in template.data_vars.items()})
        encoding = {name: {"chunks": tuple(self.chunk_sizes.get(d, template.sizes[d]) for d in var.dims),
                           **_compression()}
                    for name, var in template.data_vars.items()}
        # Metadata and the (small, in-memory) coordinates now; the map values chunk by chunk.
        template.to_zarr(self.path, mode="w", compute=False, consolidated=False, encoding=encoding)

    def _store_matches(self) -> bool:
        import zarr

        try:
            group = zarr.open_group(str(self.path), mode="r")
            for name, var in self.dataset.data_vars.items():
                array = group[name]
                expected = tuple(self.chunk_sizes.get(d, self.dataset.sizes[d]) for d in var.dims)
                if array.shape != var.shape or array.chunks != expected or array.dtype != var.dtype:
                    return False
        except (KeyError, OSError, ValueError, TypeError):
            return False
        return True

    def _verified(self, index: tuple[int, int]) -> bool:
        try:
            recorded = json.loads(self._marker(index).read_text())["checksums"]
        except (OSError, ValueError, KeyError):
            return False
        try:
            found = self._read_checksums(self._region(index))
        except (OSError, ValueError, KeyError):
            return False
        return found == recorded

    def _region(self, index: tuple[int, int]) -> dict[str, slice]:
        return {d: slice(k * self.chunk_sizes[d], min((k + 1) * self.chunk_sizes[d], self.dataset.sizes[d]))
                for d, k in zip(SPATIAL, index)}

    def _read_checksums(self, region: dict[str, slice]) -> dict[str, str]:
        if self.format == "fits-tiles":
            index = tuple(region[d].start // self.chunk_sizes[d] for d in SPATIAL)
            return _fits_checksums(self._tile(index))
        import zarr

        group = zarr.open_group(str(self.path), mode="r")
        out = {}
        for name, var in self.dataset.data_vars.items():
            key = tuple(region.get(d, slice(None)) for d in var.dims)
            out[name] = chunk_checksum(group[name][key])
        return out

    # ------------------------------------------------------------------ write
    def arrays(self) -> dict[str, Any]:
        """The dask arrays of the variables (to optimise the graphs of several stores together)."""
        return {name: var.data for name, var in self.dataset.data_vars.items()}

    def tasks(self, arrays: dict[str, Any] | None = None) -> list[Any]:
        """One `dask.delayed` write per chunk not yet done, taking the chunk of every variable.

        ``arrays`` replaces `arrays` (e.g. by their optimised versions, see `dask.optimize`).
        The writes share one graph layer (a `dask.delayed` call per chunk merged the arrays'
        graphs once per call: seconds for a survey's 70 chunks x 7 variables).
        """
        from functools import partial
        from uuid import uuid4

        from dask.delayed import Delayed
        from dask.highlevelgraph import HighLevelGraph

        arrays = self.arrays() if arrays is None else arrays
        names = list(arrays)
        dims = {name: var.dims for name, var in self.dataset.data_vars.items()}
        layer_name = f"write-{self.path.name}-{uuid4().hex}"  # not pure: writes files
        layer: dict[Any, Any] = {}
        for index, region in self.regions():
            if index in self.done:
                continue
            blocks = [(arrays[name].name, *(index[SPATIAL.index(d)] if d in SPATIAL else 0 for d in dims[name]))
                      for name in names]
            if self.format == "zarr":
                write = partial(_write_zarr_chunk, names=names, dims=dims, store=str(self.path), region=region,
                                marker=str(self._marker(index)))
            else:
                template = self.dataset.isel(region)  # coordinates only are used (computed, small)
                write = partial(_write_fits_tile, names=names, coords=template.drop_vars(list(template.data_vars)),
                                dims=dims, attrs={name: template[name].attrs for name in template.data_vars},
                                path=str(self._tile(index)), marker=str(self._marker(index)))
            layer[(layer_name, *index)] = (write, blocks)
        graph = HighLevelGraph.from_collections(layer_name, layer, dependencies=list(arrays.values()))
        return [Delayed(key, graph, layer=layer_name) for key in layer]

    def finish(self) -> None:
        """Check that every chunk is recorded, consolidate the zarr metadata (a plain
        `xarray.open_zarr` then opens the store without a warning), remove the markers."""
        missing = [index for index, _ in self.regions() if not self._marker(index).is_file()]
        if missing:
            raise DataStoreError(f"{self.path}: {len(missing)} chunks were not written (first {missing[0]})")
        if self.format == "zarr":
            import warnings

            import zarr

            with warnings.catch_warnings():  # "not part of the Zarr format 3 specification" (yet)
                warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
                zarr.consolidate_metadata(str(self.path))
        shutil.rmtree(self.progress, ignore_errors=True)


def _write_zarr_chunk(values: list[np.ndarray], *, names: list[str], dims: dict[str, tuple], store: str,
                      region: dict[str, slice], marker: str) -> int:
    """Write every variable of one computed chunk (``values`` in the order of ``names``) into its
    zarr arrays, then the chunk's marker."""
    chunk = dict(zip(names, values))
    writes, checksums = [], {}
    for name, data in chunk.items():
        array = _writable_array(store, name)
        data = np.asarray(data, dtype=array.dtype)
        writes.append((array, tuple(region.get(d, slice(None)) for d in dims[name]), data))
        checksums[name] = chunk_checksum(data)
    _set_together(writes)
    _write_marker(Path(marker), {"checksums": checksums})
    return sum(int(v.nbytes) for v in chunk.values())


def _set_together(writes: list[tuple[Any, tuple, np.ndarray]]) -> None:
    """Write each ``(zarr array, selection, values)`` of ``writes``, all in one call to zarr's event loop.

    zarr's synchronous ``array[selection] = values`` hands its write to zarr's event-loop thread and
    waits for it: ~1 ms per variable, whatever its size (a survey chunk of ``images.zarr`` has 15,
    ~3 s of the 1000-run survey's 26 s). Here a chunk's writes run on that loop concurrently
    (`zarr.AsyncArray.setitem`), with one wait: a 15-variable image chunk 22 -> 15 ms, a 3-variable
    cube chunk (24 x 256 x 256) 41 -> 30 ms (benchmarks/README.md). zarr's ``sync`` that runs them is
    not public API: without it (zarr 2, or arrays without ``async_array``) the writes go one by one.
    """
    try:
        from zarr.core.sync import sync
    except ImportError:  # zarr 2, or a zarr 3 without it: the public, one-by-one path
        sync = None
    if sync is None or len(writes) < 2 or not all(hasattr(array, "async_array") for array, _, _ in writes):
        for array, selection, data in writes:
            array[selection] = data
        return
    import asyncio

    async def write_all() -> list:
        # Every write ends (or fails) before this returns: none is left running behind a failure.
        return await asyncio.gather(*(array.async_array.setitem(selection, data) for array, selection, data in writes),
                                    return_exceptions=True)

    for result in sync(write_all()):
        if isinstance(result, BaseException):
            raise result


def _writable_array(store: str, name: str) -> Any:
    """The zarr array ``name`` of ``store`` opened for writing, kept for the next chunks of the same store
    (opening the group and the array read their metadata files: ~0.5 s of a survey's 140 chunk writes).

    Keyed by the array's metadata file (inode, mtime, size): a store created again at the same path
    is opened again.
    """
    try:
        meta = os.stat(os.path.join(store, name, "zarr.json"))
    except OSError:  # not a zarr 3 array (or gone): open it as before, uncached
        import zarr

        return zarr.open_group(store, mode="r+")[name]
    return _open_array(store, name, (meta.st_ino, meta.st_mtime_ns, meta.st_size))


@lru_cache(maxsize=32)
def _open_array(store: str, name: str, stamp: tuple[int, int, int]) -> Any:
    import zarr

    return zarr.open_group(store, mode="r+")[name]


def _write_fits_tile(values: list[np.ndarray], *, names: list[str], coords: xr.Dataset, dims: dict[str, tuple],
                     attrs: dict[str, dict], path: str, marker: str) -> int:
    """Write one computed chunk as a FITS file (one image HDU per variable, the tile's WCS)."""
    from xgamma.io.fits_maps import write_maps

    chunk = dict(zip(names, values))
    tile = coords.assign({name: (dims[name], data, attrs[name]) for name, data in chunk.items()})
    write_maps(_fits_layout(tile), path, overwrite=True)
    _write_marker(Path(marker), {"checksums": _fits_checksums(Path(path))})
    return sum(int(v.nbytes) for v in chunk.values())


def _fits_layout(chunk: xr.Dataset) -> xr.Dataset:
    """Variables with extra dims (e.g. ``correlation_radius``) split into one map per value."""
    out = {}
    for name, var in chunk.data_vars.items():
        extra = [d for d in var.dims if d not in ("energy", *SPATIAL)]
        if not extra:
            out[name] = var
            continue
        stacked = var.stack(_item=extra)
        for k in range(stacked.sizes["_item"]):
            item = stacked.isel(_item=k)
            label = "_".join(f"{d}{_label(item.coords[d].values)}" for d in extra)
            out[f"{name}_{label}"] = item.drop_vars(["_item", *extra], errors="ignore")
    return xr.Dataset(out, attrs=chunk.attrs)


def _label(value: Any) -> str:
    number = np.ndim(value) == 0 and np.issubdtype(np.asarray(value).dtype, np.number)
    return f"{float(value):g}" if number else str(value)


def _fits_checksums(path: Path) -> dict[str, str]:
    from astropy.io import fits

    with fits.open(path, memmap=False) as hdulist:
        return {hdu.name: chunk_checksum(np.asarray(hdu.data)) for hdu in hdulist[1:] if hdu.is_image}
