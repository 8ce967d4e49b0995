"""Numpy block functions of the ring background (no dask, no xarray: they pickle and test alone).

The equations (Gammapy's ``RingBackgroundMaker``, Berge et al. 2007), per pixel, with ``E`` the
exclusion mask (True = usable) and ``R`` the ring kernel, are `ring_reference`::

    off            = R (x) (counts * E)
    acceptance_off = R (x) (acceptance * E)
    alpha          = acceptance / acceptance_off
    background     = alpha * off

`ring_block` computes the same, faster, on one block of runs: each run's offset cut and ring sums
(an FFT over the bounding box of its field of view only), written in place; it is tested against
`ring_reference`. With ``stack=True`` it returns the partial sums over the block's runs that
`stacked_maps` turns into stacked maps, without any per-run map.

On large maps fresh temporaries (page faults), ``where=`` ufuncs and boolean assignments cost
several times the arithmetic: products with masks and in-place writes are used instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from xgamma.background.offset import inside_offset
from xgamma.convolution import convolve_block, convolve_padded, padded_planes

if TYPE_CHECKING:
    from xgamma.geometry import SkyGeometry

__all__ = ["RING_MAPS", "STACK_SUMS", "ring_reference", "ring_block", "block_offset_cut", "block_exclusion",
           "stacked_maps", "partial_sums", "zero_outside"]

#: The maps of a ring result, in channel order.
RING_MAPS = ("counts", "acceptance", "off", "acceptance_off", "alpha", "background")
#: The partial sums over runs of a stacked ring, in channel order.
STACK_SUMS = ("counts", "acceptance", "off", "alpha_off", "acceptance_off")


def ring_reference(counts: np.ndarray, acceptance: np.ndarray, exclusion: np.ndarray,
                   kernel: np.ndarray) -> dict[str, np.ndarray]:
    """The ring equations as written (one run, no offset cut): the reference for `ring_block`.

    Parameters
    ----------
    counts, acceptance : `numpy.ndarray`
        Maps (..., n_lat, n_lon).
    exclusion : `numpy.ndarray`
        Boolean (n_lat, n_lon), True = usable.
    kernel : `numpy.ndarray`
        Ring kernel (`~xgamma.convolution.ring_kernel`).

    Returns
    -------
    maps : dict
        ``off``, ``acceptance_off``, ``alpha`` (NaN without off acceptance), ``background``.
    """
    off = np.rint(convolve_block(counts * exclusion, kernel))
    acceptance_off = convolve_block(acceptance * exclusion, kernel)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.where(acceptance_off > 0, acceptance / acceptance_off, np.nan)
    return {"off": off, "acceptance_off": acceptance_off, "alpha": alpha, "background": alpha * off}


def zero_outside(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``values`` where ``mask`` is True, 0 elsewhere (NaN included), as a new float array.

    A product with the boolean mask, 3-5x faster than `numpy.where` or a ``where=`` ufunc on large
    maps; `numpy.where` only when a NaN would survive the product.
    """
    out = np.multiply(values, mask, dtype=float)
    if np.isnan(out).any():
        out = np.where(mask, values, 0.0).astype(float, copy=False)
    return out


def _fov_box(inside: np.ndarray | None) -> tuple[slice, slice] | None:
    """Bounding box of a run's offset cut (everything without a cut; None when it is empty)."""
    if inside is None:
        return slice(None), slice(None)
    rows = np.flatnonzero(inside.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(inside.any(axis=0))
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


def _run_ring_sums(
    counts: np.ndarray, acceptance: np.ndarray, inside: np.ndarray | None, excl: np.ndarray | None,
    kernel: np.ndarray,
) -> tuple | None:
    """One observation's ring sums over the box around its offset cut.

    Counts and acceptance are zero outside the cut, and a pixel outside it has no off measurement,
    so an FFT over the cut's bounding box (zero-padded) gives every sum that is kept: a wide map
    with small fields of view costs a field of view per run.

    Returns
    -------
    box, counts, acceptance, off, acceptance_off, valid
        ``box`` = (lat, lon) slices; the maps are on the box (counts and acceptance cut, NaN kept);
        ``valid``: the pixels with an off measurement (inside the cut, off acceptance > 0). None
        when the cut is empty.
    """
    box = _fov_box(inside)
    if box is None:
        return None
    counts, acceptance = counts[..., box[0], box[1]], acceptance[..., box[0], box[1]]
    cut = None if inside is None else inside[box]
    if cut is not None:
        counts, acceptance = zero_outside(counts, cut), zero_outside(acceptance, cut)
    plane = counts.shape[-2:]
    buffer = padded_planes((2, *counts.shape[:-2]), plane, kernel)  # the inputs are written in place
    inputs = buffer[..., : plane[0], : plane[1]]
    if excl is None:
        inputs[0], inputs[1] = counts, acceptance
    else:
        np.multiply(counts, excl[box], out=inputs[0])
        np.multiply(acceptance, excl[box], out=inputs[1])
    off, acc_off = convolve_padded(buffer, plane, kernel, rint=(True, False))
    valid = acc_off > 0
    if cut is not None:
        valid &= cut
    return box, counts, acceptance, off, acc_off, valid


def _zero_nan(values: np.ndarray) -> np.ndarray:
    """``values`` with NaN as 0 (copied only when there is a NaN)."""
    return np.nan_to_num(values, nan=0.0, posinf=np.inf, neginf=-np.inf) if np.isnan(values).any() else values


def block_offset_cut(window: tuple[tuple[int, int], ...], *, geometry: SkyGeometry, pointings: np.ndarray | None,
                     limit: float | None, obs_axis: bool) -> np.ndarray | None:
    """Offset cut of the runs of a block, (n_runs, n_lat, n_lon) of its ``window`` (None: no cut)."""
    if limit is None:
        return None
    (y0, y1), (x0, x1) = window[-2:]
    runs = pointings[slice(*window[0])] if obs_axis else pointings
    return inside_offset(geometry, runs, limit, slice(y0, y1), slice(x0, x1))


def block_exclusion(extra: tuple[np.ndarray, ...], exclusion: np.ndarray | None,
                    window: tuple[tuple[int, int], ...]) -> np.ndarray | None:
    """The exclusion mask of a block as floats: a block input (dask mask) or a slice of the mask."""
    (y0, y1), (x0, x1) = window[-2:]
    excl = extra[0] if extra else (None if exclusion is None else exclusion[y0:y1, x0:x1])
    return None if excl is None else excl.astype(float)


def ring_block(
    counts: np.ndarray,
    acceptance: np.ndarray,
    *extra: np.ndarray,
    window: tuple[tuple[int, int], ...],
    core: tuple[slice, slice],
    kernel: np.ndarray,
    geometry: SkyGeometry,
    pointings: np.ndarray | None,
    limit: float | None,
    obs_axis: bool,
    exclusion: np.ndarray | None,
    stack: bool = False,
) -> np.ndarray:
    """Ring maps of one (overlapped) block of runs (a `~xgamma.blocks.overlap_apply` block function).

    Parameters
    ----------
    counts, acceptance : `numpy.ndarray`
        Blocks (runs, ..., lat, lon) with ``obs_axis``, else (..., lat, lon).
    *extra : `numpy.ndarray`
        The block of the exclusion mask when it is lazy (else ``exclusion`` is the whole mask).
    window, core :
        From `~xgamma.blocks.overlap_apply`.
    kernel : `numpy.ndarray`
        Ring kernel.
    geometry, pointings, limit, obs_axis :
        Offset cut of each run (`block_offset_cut`); ``limit`` None: no cut.
    exclusion : `numpy.ndarray` or None
        Whole exclusion mask (lat, lon), True = usable.
    stack : bool
        Per run (False): channels `RING_MAPS`, shape (6, *block core). Stacked (True, runs on axis
        0): the sums over the block's runs of `STACK_SUMS` with NaN as 0, shape (5, 1, *core[1:]).
    """
    if not obs_axis:  # a single map: one run
        counts, acceptance = counts[None], acceptance[None]
    inside = block_offset_cut(window, geometry=geometry, pointings=pointings, limit=limit, obs_axis=obs_axis)
    excl = block_exclusion(extra, exclusion, window)
    plane = counts.shape[1:]
    if stack:
        out = np.zeros((5, 1, *plane))
    else:
        out = np.zeros((6, *counts.shape))  # written in place: these maps are the bulk of the memory
        out[4:] = np.nan
    for o in range(counts.shape[0]):
        sums = _run_ring_sums(counts[o], acceptance[o], None if inside is None else inside[o], excl, kernel)
        if sums is None:
            continue  # nothing of this run in the block
        (ys, xs), run_counts, run_acceptance, off, acc_off, valid = sums
        off = off * valid
        if stack:
            counts_sum, acceptance_sum, off_sum, bkg_sum, acc_off_sum = (channel[0][..., ys, xs] for channel in out)
            counts_sum += _zero_nan(run_counts)
            acceptance_sum += _zero_nan(run_acceptance)
            off_sum += off
            acc_off_sum += acc_off * valid
            with np.errstate(invalid="ignore"):
                alpha = run_acceptance / np.where(valid, acc_off, np.inf)  # 0 without an off measurement
            alpha *= off
            bkg_sum += _zero_nan(alpha)
        else:
            run_out = [channel[o][..., ys, xs] for channel in out]
            run_out[0][...], run_out[1][...], run_out[2][...] = run_counts, run_acceptance, off
            np.multiply(acc_off, valid, out=run_out[3])
            with np.errstate(invalid="ignore"):
                np.divide(run_acceptance, np.where(valid, acc_off, np.nan), out=run_out[4])  # alpha
            np.multiply(run_out[4], off, out=run_out[5])  # background
    out = out if obs_axis or stack else out[:, 0]
    return out[..., core[0], core[1]]


def stacked_maps(sums: np.ndarray) -> np.ndarray:
    """Stacked `RING_MAPS` from the sums over runs of `STACK_SUMS` (channels first).

    The stacked ``alpha`` is ``sum(alpha_i * off_i) / sum(off_i)`` (Gammapy's on-off stacking rule);
    without off counts it is ``sum(acceptance_i) / sum(acceptance_off_i)``, and NaN without off
    acceptance either; ``acceptance_off = acceptance / alpha`` keeps their ratio alpha.
    """
    counts, acceptance, off, bkg, acc_off_sum = sums
    out = np.empty((6, *counts.shape))
    out[0], out[1], out[2] = counts, acceptance, off
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.where(off > 0, bkg / off, acceptance / np.where(acc_off_sum > 0, acc_off_sum, np.nan))
        out[3] = np.where(alpha > 0, acceptance / alpha, acc_off_sum)
    out[4] = alpha
    np.multiply(alpha, off, out=out[5])
    return out


def partial_sums(counts: np.ndarray, acceptance: np.ndarray, off: np.ndarray, alpha: np.ndarray,
                 acc_off: np.ndarray, *, axis: int) -> np.ndarray:
    """NaN-as-zero sums over ``axis`` (kept, length 1) of `STACK_SUMS`, from per-run ring maps."""
    with np.errstate(invalid="ignore"):
        bkg = alpha * off
    return np.stack([np.nansum(v, axis=axis, keepdims=True) for v in (counts, acceptance, off, bkg, acc_off)])

