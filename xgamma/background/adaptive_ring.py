"""Adaptive ring background (the H.E.S.S. Galactic plane survey method).

Around each pixel, rings of growing size are tried in turn (inner radius growing in steps at fixed
width, or width growing at fixed inner radius) up to ``r_out_max``; the first ring for which the
approximate on/off acceptance ratio ``alpha_approx = T_theta(acceptance) / acceptance_off`` is at
most ``threshold_alpha`` (and, optionally, whose unexcluded area fraction is at least
``min_area_fraction``) gives the pixel's off counts and off acceptance. ``T_theta`` sums over a
top-hat of radius ``theta`` (the on region the significance will use). Pixels where no ring
qualifies get off = 0 and NaN alpha (no background estimate).

Unlike Gammapy's ``AdaptiveRingBackgroundMaker`` (which stores the theta-correlated acceptance as
the on acceptance), the per-pixel ``alpha = acceptance / acceptance_off`` is returned, the same
convention as the plain ring, so that the result feeds `significance_maps` unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import xarray as xr

from xgamma.background.inputs import ring_inputs, to_pixels
from xgamma.background.ring_blocks import RING_MAPS, block_exclusion, block_offset_cut
from xgamma.blocks import overlap_apply, split_channels
from xgamma.convolution import convolve_block, kernel_radius, ring_kernel, tophat_kernel
from xgamma.exceptions import EstimatorError
from xgamma.maps import dataset_from_arrays

__all__ = ["AdaptiveRings", "adaptive_ring_background", "adaptive_ring_kernels", "adaptive_ring_block"]


def adaptive_ring_kernels(
    r_in: float, width: float, r_out_max: float, stepsize: float, method: str
) -> list[np.ndarray]:
    """Ring kernels in the order they are tried (all sizes in pixels)."""
    if method == "fixed_width":
        pairs = [(r, width) for r in np.arange(r_in, r_out_max - width, stepsize)]
    elif method == "fixed_r_in":
        pairs = [(r_in, w) for w in np.arange(width, r_out_max - r_in, stepsize)]
    else:
        raise EstimatorError(f"adaptive ring method must be 'fixed_width' or 'fixed_r_in', got {method!r}")
    if not pairs:
        raise EstimatorError("adaptive ring: r_out_max leaves no ring between r_in + width and r_out_max")
    return [ring_kernel(r, w) for r, w in pairs]


def _pad_to(kernel: np.ndarray, size: int) -> np.ndarray:
    pad = (size - kernel.shape[0]) // 2
    return np.pad(kernel, pad) if pad > 0 else kernel


@dataclass(frozen=True)
class AdaptiveRings:
    """The rings an adaptive-ring block tries (`adaptive_ring_kernels`; sizes in pixels) and the radius
    ``theta`` of the on region: what the block tasks carry instead of the kernels.

    The kernels are made where they are used, once per process (`kernels`). Carried by each task, they
    were 1.5 MB of it (the H.E.S.S. survey's rings at 0.02 deg: 6 rings and the top-hat, 165 x 165
    pixels each): the 1000-run survey's graph pickled to 22.5 MB with them, 8.8 MB without.

    Attributes
    ----------
    r_in, width, r_out_max, stepsize : float
        The rings (pixels), as in `adaptive_ring_kernels`.
    method : {"fixed_width", "fixed_r_in"}
        How the rings grow.
    theta : float
        Radius of the top-hat on region (pixels).
    """

    r_in: float
    width: float
    r_out_max: float
    stepsize: float
    method: str
    theta: float

    def kernels(self) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        """The ring kernels in the order they are tried and the top-hat of radius ``theta``, all
        zero-padded to one size (read-only arrays, made once per process)."""
        return _padded_kernels(self)


@lru_cache(maxsize=4)
def _padded_kernels(rings: AdaptiveRings) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    kernels = adaptive_ring_kernels(rings.r_in, rings.width, rings.r_out_max, rings.stepsize, rings.method)
    size = max(kernel.shape[0] for kernel in kernels)
    kernels = [_pad_to(kernel, size) for kernel in kernels]
    tophat = tophat_kernel(rings.theta)
    tophat = _pad_to(tophat, max(size, tophat.shape[0]))
    for kernel in (*kernels, tophat):
        kernel.flags.writeable = False  # shared by every block of the process
    return tuple(kernels), tophat


def _adaptive_sums(counts_excl: np.ndarray, acc_excl: np.ndarray, excl: np.ndarray, acc: np.ndarray,
                   kernels: list[np.ndarray], tophat: np.ndarray, threshold: float,
                   min_area_fraction: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Off counts, off acceptance (NaN where no ring qualifies) and the index of the ring used (-1)."""
    acc_on = convolve_block(acc, tophat)
    off = np.full(acc.shape, np.nan)
    acc_off = np.full(acc.shape, np.nan)
    index = np.full(acc.shape, -1.0)
    done = np.zeros(acc.shape, dtype=bool)
    for i, kernel in enumerate(kernels):
        a_off = convolve_block(acc_excl, kernel)
        with np.errstate(divide="ignore", invalid="ignore"):
            alpha_approx = np.where(a_off > 0, acc_on / a_off, np.inf)
        select = (alpha_approx <= threshold) & ~done
        if min_area_fraction > 0:
            select &= convolve_block(excl, kernel) >= min_area_fraction * kernel.sum()
        if select.any():
            c_off = convolve_block(counts_excl, kernel, rint=True)
            off[select] = c_off[select]
            acc_off[select] = a_off[select]
            index[select] = i
            done |= select
        if done.all():
            break
    return off, acc_off, index


def adaptive_ring_block(counts: np.ndarray, acceptance: np.ndarray, *extra: np.ndarray, window: Any,
                        core: tuple[slice, slice], rings: AdaptiveRings, threshold: float,
                        min_area_fraction: float, geometry: Any, pointings: np.ndarray | None, limit: float | None,
                        obs_axis: bool, exclusion: np.ndarray | None) -> np.ndarray:
    """Adaptive ring maps of one (overlapped) block (a `~xgamma.blocks.overlap_apply` block function).

    Channels: `~xgamma.background.ring_blocks.RING_MAPS` then ``ring_index``, on the block's core.
    The other arguments are those of `~xgamma.background.ring_blocks.ring_block`, plus the rings tried
    (`AdaptiveRings`).
    """
    inside = block_offset_cut(window, geometry=geometry, pointings=pointings, limit=limit, obs_axis=obs_axis)
    if inside is not None:
        # (runs, lat, lon) -> broadcast against (runs, ..., lat, lon), or the single run's image
        inside = inside.reshape(inside.shape[:1] + (1,) * (counts.ndim - 3) + inside.shape[1:]) if obs_axis \
            else inside[0]
        counts, acceptance = np.where(inside, counts, 0.0), np.where(inside, acceptance, 0.0)
    excl = block_exclusion(extra, exclusion, window)
    excl = np.ones(counts.shape[-2:]) if excl is None else excl
    acc_excl = acceptance * excl
    if acc_excl.any():
        kernels, tophat = rings.kernels()
        off, acc_off, index = _adaptive_sums(counts * excl, acc_excl, np.broadcast_to(excl, counts.shape),
                                             acceptance, kernels, tophat, threshold, min_area_fraction)
    else:
        # No acceptance outside the exclusion (a block that no run reaches): every ring's off acceptance is
        # 0, so none qualifies anywhere: what `_adaptive_sums` finds after ~0.06 s of convolutions a block.
        off, acc_off, index = (np.full(acceptance.shape, value) for value in (np.nan, np.nan, -1.0))
    cy, cx = core
    counts, acceptance, off, acc_off = (a[..., cy, cx] for a in (counts, acceptance, off, acc_off))
    valid = acc_off > 0  # False for NaN (no ring qualified) too
    if inside is not None:
        valid &= inside[..., cy, cx]
    out = np.empty((len(RING_MAPS) + 1, *counts.shape))
    out[0], out[1] = counts, acceptance
    out[2], out[3] = np.where(valid, off, 0.0), np.where(valid, acc_off, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[4] = np.where(valid, acceptance / np.where(valid, out[3], 1.0), np.nan)
    np.multiply(out[4], out[2], out=out[5])
    out[6] = index[..., cy, cx]
    return out


def _check(px: dict[str, float], shape: tuple[int, int], r_out_max: Any, threshold_alpha: float,
           min_area_fraction: float) -> None:
    if not px["r_out_max"] > px["r_in"] + px["width"]:
        raise EstimatorError(f"adaptive ring r_out_max={r_out_max!r} must exceed r_in + width")
    if 2 * px["r_out_max"] > max(shape):
        raise EstimatorError(f"adaptive ring r_out_max={r_out_max!r} is wider than the map")
    if not (threshold_alpha > 0 and np.isfinite(threshold_alpha)):
        raise EstimatorError(f"threshold_alpha must be positive, got {threshold_alpha!r}")
    if not 0 <= min_area_fraction <= 1:
        raise EstimatorError(f"min_area_fraction must be within [0, 1], got {min_area_fraction!r}")


def adaptive_ring_background(
    counts: xr.DataArray,
    acceptance: xr.DataArray,
    *,
    r_in: Any = "0.7 deg",
    width: Any = "0.44 deg",
    r_out_max: Any = "1.7 deg",
    stepsize: Any = "0.02 deg",
    threshold_alpha: float = 0.1,
    theta: Any = "0.22 deg",
    min_area_fraction: float = 0.0,
    method: Literal["fixed_width", "fixed_r_in"] = "fixed_width",
    exclusion: xr.DataArray | np.ndarray | None = None,
    offset_max: Any = None,
    pointing: Any = None,
) -> xr.Dataset:
    """Adaptive ring background of one set of maps (lazy for dask-backed maps).

    Parameters
    ----------
    counts, acceptance, exclusion, offset_max, pointing :
        As in `~xgamma.background.ring_background`.
    r_in, width : str or `~astropy.units.Quantity`
        Smallest ring (angles). Defaults are the H.E.S.S. survey's 0.7 and 0.44 deg.
    r_out_max : str or `~astropy.units.Quantity`
        Largest outer radius tried (angle). Default is 1.7 deg.
    stepsize : str or `~astropy.units.Quantity`
        Growth step (angle). Default is 0.02 deg.
    threshold_alpha : float
        Largest acceptable ``alpha_approx``. Default is 0.1.
    theta : str or `~astropy.units.Quantity`
        Radius of the on region used for ``alpha_approx`` (angle). Default is 0.22 deg.
    min_area_fraction : float
        Smallest acceptable unexcluded fraction of the ring's pixels (0 to 1). Default is 0.
    method : {"fixed_width", "fixed_r_in"}
        Grow the inner radius (fixed width) or the width (fixed inner radius).

    Returns
    -------
    maps : `xarray.Dataset`
        As `~xgamma.background.ring_background`, plus ``ring_index`` (index of the ring used,
        -1 where none qualified).
    """
    inputs = ring_inputs(counts, acceptance, exclusion=exclusion, offset_max=offset_max, pointing=pointing)
    px = to_pixels(inputs.geometry, what="adaptive ring", r_in=r_in, width=width, r_out_max=r_out_max,
                   stepsize=stepsize, theta=theta)
    _check(px, inputs.geometry.shape, r_out_max, threshold_alpha, min_area_fraction)
    rings = AdaptiveRings(*(float(px[name]) for name in ("r_in", "width", "r_out_max", "stepsize")), method,
                          float(px["theta"]))
    kernels, tophat = rings.kernels()
    arrays, keywords = inputs.block_inputs()
    depth = max(kernel_radius(kernels[0]), kernel_radius(tophat))
    out = overlap_apply(adaptive_ring_block, *arrays, depth=depth, n_out=len(RING_MAPS) + 1,
                        rings=rings, threshold=float(threshold_alpha),
                        min_area_fraction=float(min_area_fraction), keep_chunks=False, **keywords)
    maps = split_channels(out, (*RING_MAPS, "ring_index"))
    if inputs.limit is None:  # nothing cut: keep the inputs as they are (dtype included)
        maps["counts"], maps["acceptance"] = inputs.template.data, inputs.acceptance
    return dataset_from_arrays(inputs.template, maps, extra=inputs.exclusion_variable(), dims=inputs.dims,
                               attrs={"background_method": "adaptive_ring", "n_rings": len(kernels)})
