"""Axes and multilinear interpolation on IRF grids (private).

The conventions follow Gammapy 2.1 so that maps agree with it:

* nodes are bin centres: geometric mean of the edges for ``log`` axes (energies),
  arithmetic mean for ``lin`` axes (offset, rad, fov_lon/lat, migra);
* interpolation is multilinear in the scaled coordinates (log of energies) and scaled values
  (log of background rates, linear otherwise);
* between the outermost node and the outermost edge the interpolation extrapolates linearly;
  beyond the edges the value is the fill value (0) -- or, with ``fill=False`` (parametric PSFs),
  the extrapolation continues everywhere;
* values are clipped at zero and non-finite results become the fill value.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import astropy.units as u
import numpy as np

from xgamma.exceptions import IRFError, UnitError

__all__ = ["IRFAxis", "GridInterpolator", "CellTable", "assemble_columns", "to_value", "BLOCK"]

Scale = Literal["lin", "log"]

# Smallest positive float32: log-scaled values are clipped there before the log (zeros in
# float32 IRF tables then interpolate like in Gammapy, which uses the data dtype's tiny).
_TINY32 = float(np.finfo(np.float32).tiny)
# Points per block in the outer-product evaluation (temporaries of ~10 x BLOCK floats).
BLOCK = 8192
_CELL_TABLES_LOCK = threading.Lock()


def to_value(value, unit: str | u.UnitBase, *, name: str) -> np.ndarray:
    """Quantity (or plain number, taken to be in ``unit``) -> float ndarray in ``unit``."""
    if isinstance(value, u.Quantity):
        try:
            return value.to_value(unit)
        except u.UnitConversionError:
            raise UnitError(f"{name}: unit {value.unit} is not convertible to {unit}") from None
    return np.asarray(value, dtype=float)


def _scale(x: np.ndarray, scale: Scale) -> np.ndarray:
    if scale == "log":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(np.maximum(x, _TINY32))
    return x


@dataclass(frozen=True, eq=False)
class IRFAxis:
    """One axis of an IRF table.

    Parameters
    ----------
    name : str
        ``energy_true``, ``energy``, ``offset``, ``rad``, ``migra``, ``fov_lon``, ``fov_lat``.
    edges : ndarray
        Bin edges (float64) in ``unit``.
    unit : str
        Unit of the edges.
    interp : {"lin", "log"}
        Interpolation scale of the axis.
    """

    name: str
    edges: np.ndarray
    unit: str
    interp: Scale
    nodes: np.ndarray | None = None

    def __post_init__(self) -> None:
        edges = np.asarray(self.edges, dtype=float)
        object.__setattr__(self, "edges", edges)
        if self.nodes is not None:  # node-defined axis: the nodes are given, edges derived
            object.__setattr__(self, "nodes", np.asarray(self.nodes, dtype=float))
            return
        if self.interp == "log":
            nodes = np.sqrt(edges[:-1] * edges[1:])
        else:
            nodes = 0.5 * (edges[:-1] + edges[1:])
        object.__setattr__(self, "nodes", nodes)

    @classmethod
    def from_lo_hi(cls, name: str, lo: u.Quantity, hi: u.Quantity, interp: Scale) -> IRFAxis:
        """Axis from the ``*_LO``/``*_HI`` columns of a GADF table.

        Edges are ``LO`` plus the last ``HI``; when ``LO == HI`` the values are nodes and the
        edges are put half-way between them (in the interpolation scale).
        """
        unit = hi.unit
        lo = np.atleast_1d(lo.to_value(unit)).astype(float)
        hi = np.atleast_1d(hi.to_value(unit)).astype(float)
        if lo.size > 1 and np.allclose(lo, hi):
            s = _scale(lo, interp)
            mid = 0.5 * (s[1:] + s[:-1])
            s_edges = np.concatenate([[s[0] - (mid[0] - s[0])], mid, [s[-1] + (s[-1] - mid[-1])]])
            edges = np.exp(s_edges) if interp == "log" else s_edges
            return cls(name=name, edges=edges, unit=unit.to_string(), interp=interp, nodes=lo)
        edges = np.append(lo, hi[-1])
        return cls(name=name, edges=edges, unit=unit.to_string(), interp=interp)

    @cached_property
    def scaled_nodes(self) -> np.ndarray:
        """Nodes in the interpolation scale (log for log axes)."""
        return _scale(self.nodes, self.interp)

    @cached_property
    def node_steps(self) -> np.ndarray:
        """Differences of consecutive scaled nodes (the interval widths of the interpolation weights)."""
        return np.diff(self.scaled_nodes)

    @cached_property
    def uniform_step(self) -> float:
        """Step of the scaled nodes if they are regular (to 1e-5 relative), else 0."""
        s = self.scaled_nodes
        if s.size < 2:
            return 0.0
        step = np.diff(s)
        return float(step.mean()) if np.allclose(step, step[0], rtol=1e-5, atol=0) and step[0] > 0 else 0.0

    @property
    def nbin(self) -> int:
        return self.nodes.size

    @property
    def edges_quantity(self) -> u.Quantity:
        return u.Quantity(self.edges, self.unit)

    @property
    def center(self) -> u.Quantity:
        """Bin centres (interpolation nodes) as a Quantity."""
        return u.Quantity(self.nodes, self.unit)

    def __repr__(self) -> str:
        return (
            f"IRFAxis({self.name!r}, nbin={self.nbin}, "
            f"range=[{self.edges[0]:.4g}, {self.edges[-1]:.4g}] {self.unit}, interp={self.interp!r})"
        )


class _AxisLookup:
    """Interval index, weight and validity of coordinates on one axis."""

    __slots__ = ("idx", "weight", "valid")

    def __init__(self, axis: IRFAxis, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=float)
        if x.ndim == 0:  # 0-d: work on 1 element so in-place ufuncs get arrays, then restore
            self.__init__(axis, x.reshape(1))
            self.idx, self.valid = self.idx.reshape(()), self.valid.reshape(())
            self.weight = None if self.weight is None else self.weight.reshape(())
            return
        s_nodes = axis.scaled_nodes
        s = _scale(x, axis.interp)
        with np.errstate(invalid="ignore"):
            self.valid = (x >= axis.edges[0]) & (x <= axis.edges[-1])
        if s_nodes.size == 1:  # a length-1 axis is constant (as in Gammapy)
            self.idx = np.zeros(np.shape(x), dtype=np.intp)
            self.weight = None
            return
        # Interval of the nodes; outside the node range the edge interval extrapolates.
        if axis.uniform_step:  # regular nodes: index arithmetic, much cheaper than a search
            pos = s - s_nodes[0]
            pos *= 1.0 / axis.uniform_step
            np.fmax(pos, 0, out=pos)  # fmax/fmin map NaN to the bound: safe integer cast
            np.fmin(pos, s_nodes.size - 2, out=pos)
            idx = pos.astype(np.intp)
        else:
            idx = np.clip(np.searchsorted(s_nodes, s, side="right") - 1, 0, s_nodes.size - 2)
        # (s - lower node) / interval width, the widths taken from `IRFAxis.node_steps` (the same differences).
        weight = s - s_nodes[idx]
        weight /= axis.node_steps[idx]
        self.weight = weight
        self.idx = idx


class GridInterpolator:
    """Multilinear interpolation of a table on `IRFAxis` nodes (Gammapy-compatible).

    Parameters
    ----------
    axes : sequence of IRFAxis
        Axes in the order of the ``values`` dimensions.
    values : ndarray
        Table values (plain numbers in the IRF's unit).
    values_scale : {"lin", "log"}
        Interpolate the values linearly or in log.
    fill : bool
        If True, points outside the axis edges give 0; if False, extrapolate everywhere.
    mask_rule : callable, optional
        ``mask_rule(valid_per_axis) -> valid``; default: inside the edges of every axis.
    """

    def __init__(
        self,
        axes: tuple[IRFAxis, ...],
        values: np.ndarray,
        *,
        values_scale: Scale = "lin",
        fill: bool = True,
        mask_rule=None,
    ) -> None:
        values = np.asarray(values)
        shape = tuple(a.nbin for a in axes)
        if values.shape != shape:
            names = [a.name for a in axes]
            raise IRFError(f"IRF data shape {values.shape} does not match axes {names} {shape}")
        self.axes = tuple(axes)
        self.values_scale = values_scale
        self.fill = fill
        # Combines the per-axis "inside the edges" flags into the points to keep (default: all
        # axes inside). Energy dispersion keeps points unless both energy and migra are out.
        self.mask_rule = mask_rule
        self.table = _scale(values.astype(float), values_scale)
        # With a finite table, only invalid (masked) points can give non-finite values.
        self.finite = bool(np.all(np.isfinite(self.table)))

    def _inverse(self, v: np.ndarray) -> np.ndarray:
        if self.values_scale == "log":
            with np.errstate(over="ignore"):  # far extrapolation (then masked) may overflow
                np.exp(v, out=v)
        # Clip at zero (NaN stays NaN). Most tables interpolate to no negative value: a min (4x cheaper
        # than the clip) tells; a -0.0 then stays -0.0 instead of becoming 0.0 (equal values).
        if not v.size or not v.min() >= 0.0:
            np.maximum(v, 0.0, out=v)
        return v

    def _finish(self, v: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
        v = self._inverse(v)
        if self.fill:
            bad = ~np.isfinite(v)
            if valid is not None:
                bad |= ~valid
            v[bad] = 0.0
        return v

    def __call__(self, *coords: np.ndarray) -> np.ndarray:
        """Interpolate at ``coords`` (one broadcastable float array per axis, in axis units)."""
        coords = [np.asarray(c, dtype=float) for c in coords]
        ndim = max(c.ndim for c in coords)
        first = coords[0]
        others_lead1 = all(c.ndim < ndim or c.shape[0] == 1 for c in coords[1:]) if ndim else False
        outer_like = first.ndim == ndim >= 1 and first.size == first.shape[0] > 0
        if self.mask_rule is None and outer_like and others_lead1:
            # Fast path: the first axis varies only along the leading dim (energy[:, None, None]).
            # Drop the (length-1) leading dim of the other coordinates, pad them to ndim - 1.
            trimmed = [
                c.reshape(c.shape[1:]) if c.ndim == ndim else c.reshape((1,) * (ndim - 1 - c.ndim) + c.shape)
                for c in coords[1:]
            ]
            rest = np.broadcast_shapes(*[c.shape for c in trimmed])
            return self.outer(first.ravel(), [np.broadcast_to(c, rest) for c in trimmed])
        shape = np.broadcast_shapes(*[c.shape for c in coords])
        lookups = [_AxisLookup(a, c) for a, c in zip(self.axes, coords)]
        out = self._corners(self.table, lookups, shape)
        valids = [np.broadcast_to(lk.valid, shape) for lk in lookups]
        valid = np.logical_and.reduce(valids) if self.mask_rule is None else self.mask_rule(valids)
        return self._finish(out, valid)

    @staticmethod
    def _corners(table: np.ndarray, lookups: list[_AxisLookup], shape: tuple[int, ...]) -> np.ndarray:
        out = np.zeros(shape) if shape else np.zeros(())
        active = [k for k, lk in enumerate(lookups) if lk.weight is not None]
        for corner in itertools.product((0, 1), repeat=len(active)):
            weight = 1.0
            index = [lk.idx for lk in lookups]
            for k, c in zip(active, corner):
                w = lookups[k].weight
                weight = weight * (w if c else 1.0 - w)
                if c:
                    index[k] = index[k] + 1
            out += weight * table[tuple(index)]
        return out

    def first_axis_slices(self, x0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Interpolate the scaled table along the first axis only.

        Returns the scaled sub-tables (len(x0), *other axes) and the validity of ``x0``.
        """
        lk = _AxisLookup(self.axes[0], x0)
        if lk.weight is None:
            sub = np.repeat(self.table[:1], x0.size, axis=0)
        else:
            w = lk.weight.reshape((-1,) + (1,) * (self.table.ndim - 1))
            sub = (1.0 - w) * self.table[lk.idx] + w * self.table[lk.idx + 1]
        return sub, lk.valid

    def cell_table(self, x0: np.ndarray) -> CellTable | None:
        """`CellTable` of the other axes after interpolating the first at ``x0`` (cached per ``x0``).

        None when the other axes do not fit the cell scheme (not 1 or 2 of them, an axis of one
        node, or a custom ``mask_rule``); callers then use the corner loop.
        """
        rest_axes = self.axes[1:]
        if self.mask_rule is not None or not 1 <= len(rest_axes) <= 2 or any(a.nbin < 2 for a in rest_axes):
            return None
        return self._per_x0("_cell_tables", x0, lambda x: CellTable(rest_axes, self.first_axis_slices(x)[0]))

    def first_lookup(self, x0: np.ndarray) -> _AxisLookup:
        """`_AxisLookup` of ``x0`` on the first axis (1-D; cached per ``x0``, read-only arrays): map making
        asks for the same energies on every slice of pixels."""

        def lookup(x: np.ndarray) -> _AxisLookup:
            found = _AxisLookup(self.axes[0], x)
            for values in (found.idx, found.weight, found.valid):
                if values is not None:
                    values.flags.writeable = False
            return found

        return self._per_x0("_first_lookups", x0, lookup)

    def _per_x0(self, name: str, x0: np.ndarray, make):
        """``make(x0)``, kept in the cache ``name`` per value of ``x0`` (a few energy grids per IRF in practice).

        The caches are shared by every copy of a cached IRF (and the threads using them): guarded by
        a lock, holding read-only values.
        """
        x0 = np.ascontiguousarray(x0, dtype=float)
        key = x0.tobytes()
        with _CELL_TABLES_LOCK:
            cache = self.__dict__.setdefault(name, {})
            value = cache.get(key)
        if value is None:
            value = make(x0)
            with _CELL_TABLES_LOCK:
                if len(cache) >= 8:
                    cache.pop(next(iter(cache)))
                cache[key] = value
        return value

    def node_cells(self) -> CellTable | None:
        """`CellTable` of the other axes whose rows are the first axis' nodes (made once, kept).

        None when `cell_table` would be None, or the first axis has a single node.
        """
        cells = self.__dict__.get("_node_cells", False)
        if cells is False:
            rest_axes = self.axes[1:]
            usable = (self.mask_rule is None and 1 <= len(rest_axes) <= 2 and self.axes[0].nbin >= 2
                      and all(a.nbin >= 2 for a in rest_axes))
            cells = CellTable(rest_axes, self.table) if usable else None
            with _CELL_TABLES_LOCK:
                self.__dict__.setdefault("_node_cells", cells)
        return self.__dict__["_node_cells"]

    def outer_blocks(self, x0: np.ndarray, rest: list[np.ndarray], *, block: int = BLOCK, nodes_first: bool = False):
        """Scaled interpolated values at the outer product of ``x0`` (1-D) and points ``rest``.

        The first axis is interpolated on the (small) table first; the other axes use indices
        and weights shared by all ``x0``. Work goes in blocks of ``block`` points so that the
        temporaries stay in cache (large numpy temporaries are slow on these machines).

        With ``nodes_first`` (the caller's choice: worth it with fewer first-axis nodes than ``x0``
        values, e.g. a background table of 9 energy nodes evaluated at 25 energy edges), the other
        axes are interpolated on the rows of the nodes first and the first axis last (`node_cells`):
        the per-point work then grows with the nodes, not with ``x0``. The same multilinear
        function, summed in another order (values within ~1e-15 relative of the other order's).
        Either way each row of the values depends on its own ``x0`` value only: the rows of a
        subset of ``x0`` are those of the whole, bit for bit.

        Yields
        ------
        sl : slice
            Block of the flattened points.
        values : ndarray
            Scaled values, shape (len(x0), block size) (log values for a log-scaled table).
        valid : ndarray
            Bool (block size,): points inside the edges of the other axes.
        """
        flat = [np.ravel(c) for c in rest]
        npts = flat[0].size if flat else 1
        nodes = self.node_cells() if flat and nodes_first else None
        if nodes is not None:
            lookup = self.first_lookup(x0)
            weight = lookup.weight[:, None]
            for start in range(0, npts, block):
                sl = slice(start, min(start + block, npts))
                rows, valid = nodes([c[sl] for c in flat])
                # values[i] = rows[k] + w_i (rows[k + 1] - rows[k]), k = idx_i: a row gather, not a point gather.
                values = np.take(np.diff(rows, axis=0), lookup.idx, axis=0)
                values *= weight
                values += np.take(rows, lookup.idx, axis=0)
                yield sl, values, valid
            return
        cells = self.cell_table(x0) if flat else None
        if cells is not None:
            for start in range(0, npts, block):
                sl = slice(start, min(start + block, npts))
                values, valid = cells([c[sl] for c in flat])
                yield sl, values, valid
            return
        sub, _ = self.first_axis_slices(x0)
        n0 = x0.size
        rest_axes = self.axes[1:]
        sub = sub.reshape(n0, -1)
        strides = np.cumprod([1] + [a.nbin for a in rest_axes[::-1]])[:-1][::-1]
        for start in range(0, npts, block):
            sl = slice(start, min(start + block, npts))
            lookups = [_AxisLookup(a, c[sl]) for a, c in zip(rest_axes, flat)]
            base = sum(lk.idx * int(st) for lk, st in zip(lookups, strides))
            active = [(lk, int(st)) for lk, st in zip(lookups, strides) if lk.weight is not None]
            values = None
            for corner in itertools.product((0, 1), repeat=len(active)):
                index = base
                weight = None
                for (lk, st), c in zip(active, corner):
                    w = lk.weight if c else 1.0 - lk.weight
                    weight = w if weight is None else weight * w
                    if c:
                        index = index + st
                term = np.take(sub, index, axis=1)
                if weight is not None:
                    term *= weight
                if values is None:
                    values = term
                else:
                    values += term
            valid = np.logical_and.reduce([lk.valid for lk in lookups])
            yield sl, values, valid

    def outer(self, x0: np.ndarray, rest: list[np.ndarray]) -> np.ndarray:
        """Interpolated values at the outer product of ``x0`` (1-D) and points ``rest``.

        Returns shape (len(x0), *rest[0].shape); fill and clipping as `__call__`.
        """
        valid0 = self.first_lookup(x0).valid
        all_valid0 = bool(valid0.all())
        shape = rest[0].shape if rest else ()
        n_points = math.prod(shape)

        def filled():
            for sl, values, valid in self.outer_blocks(x0, rest):
                values = self._inverse(values)
                if self.fill:
                    if not valid.all():  # a mask of nothing costs a pass over the values
                        values[:, ~valid] = 0.0
                    if not all_valid0:
                        values[~valid0] = 0.0
                    if not self.finite:
                        values[~np.isfinite(values)] = 0.0
                yield sl, values

        out = assemble_columns(filled(), x0.size, n_points)
        return out.reshape((x0.size,) + shape)


def assemble_columns(blocks: Iterable[tuple[slice, np.ndarray]], n_rows: int, n_points: int) -> np.ndarray:
    """Join ``(columns slice, values)`` blocks (as `GridInterpolator.outer_blocks` yields) into one
    (n_rows, n_points) array. A single block spanning every point (map making's slices) is
    returned as it is, without a copy."""
    out = None
    for sl, values in blocks:
        if sl.start == 0 and sl.stop == n_points:
            return values
        if out is None:
            out = np.empty((n_rows, n_points))
        out[:, sl] = values
    return np.empty((n_rows, n_points)) if out is None else out


class CellTable:
    """Linear or bilinear interpolation of many rows of values on one or two `IRFAxis`.

    The table of each cell (interval between neighbouring nodes) is stored as its value at the
    lower corner and its differences along the axes, so that a point costs one index lookup per
    axis and, per row, ``a + wx dx`` (1-D) or ``a + wx dx + wy (dy + wx dxy)`` (2-D): the
    multilinear formula of `GridInterpolator` with fewer operations (same values to rounding).

    Parameters
    ----------
    axes : tuple of IRFAxis
        One or two axes, each with at least two nodes.
    table : ndarray
        Values, shape (n_rows, *[a.nbin for a in axes]) (already scaled, e.g. log values).
    """

    def __init__(self, axes: tuple[IRFAxis, ...], table: np.ndarray) -> None:
        self.axes = tuple(axes)
        n_rows = table.shape[0]
        if len(self.axes) == 1:
            self.parts = (table[:, :-1].copy(), np.diff(table, axis=1))
            self.stride = 0
        else:
            a = table[:, :-1, :-1]
            dx = table[:, 1:, :-1] - a
            dy = table[:, :-1, 1:] - a
            dxy = table[:, 1:, 1:] - table[:, 1:, :-1] - dy
            # Flattened cells: index i * stride + j with stride = n_nodes_y - 1.
            self.parts = tuple(np.ascontiguousarray(p.reshape(n_rows, -1)) for p in (a, dx, dy, dxy))
            self.stride = self.axes[1].nbin - 1
        for part in self.parts:
            part.flags.writeable = False  # cached on shared IRF objects: read-only

    def __call__(self, coords: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Values (n_rows, n) and validity (n,) at points given by one 1-D array per axis."""
        lookups = [_AxisLookup(a, c) for a, c in zip(self.axes, coords)]
        if len(lookups) == 1:
            (lk,) = lookups
            a, dx = (np.take(p, lk.idx, axis=1) for p in self.parts)
            dx *= lk.weight
            dx += a
            return dx, lk.valid
        lx, ly = lookups
        cell = lx.idx * self.stride
        cell += ly.idx
        a, dx, dy, dxy = (np.take(p, cell, axis=1) for p in self.parts)
        dxy *= lx.weight
        dxy += dy
        dxy *= ly.weight
        dx *= lx.weight
        dxy += dx
        dxy += a
        return dxy, lx.valid & ly.valid
