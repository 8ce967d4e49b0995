"""TS maps: at every pixel, a Cash fit of the norm of a source kernel over the fitted models.

Gammapy's ``TSMapEstimator`` (Stewart 2009 method): the kernel (a point source or a Gaussian,
convolved with the PSF) is placed on each pixel, its norm fitted to the counts with the
background (all fitted models) fixed, and the maps of TS, sqrt(TS), flux, its error and upper
limit are returned. The fits of a block run together (`xgamma.estimators.norm_fit`), one task
per block of the map with the kernel radius as overlap, so the maps are lazy and do not depend on
the chunking. A cube is fitted jointly over its energy bins with one kernel per bin (the
energy-dependent PSF), or per group of bins (``energy_edges``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import xarray as xr

from xgamma.estimators.norm_fit import MU_MIN, NormFits
from xgamma.estimators.energy_groups import energy_groups
from xgamma.estimators.ts_kernel import kernel_offsets
from xgamma.exceptions import EstimatorError

if TYPE_CHECKING:
    from xgamma.fit.dataset import MapDataset

__all__ = ["ts_map", "TSMapEstimator", "SELECTION_OPTIONAL"]

#: Optional outputs: asymmetric errors and upper limits.
SELECTION_OPTIONAL = ("errn-errp", "ul")
#: Entries (kernel entries x pixels) fitted together: a few MB per work array.
_CHUNK_ENTRIES = 1 << 18


def _channels(selection: Sequence[str]) -> list[str]:
    names = ["ts", "norm", "norm_err", "npred_excess", "niter", "success"]
    if "ul" in selection:
        names.append("norm_ul")
    if "errn-errp" in selection:
        names += ["norm_errn", "norm_errp"]
    return names


def _padded(block: np.ndarray, core: tuple[slice, slice], radius: int) -> np.ndarray:
    """``block`` with exactly ``radius`` pixels (zeros at the map edge) around its core."""
    ny, nx = block.shape[-2:]
    cy, cx = core
    top, left = radius - cy.start, radius - cx.start
    bottom, right = radius - (ny - cy.stop), radius - (nx - cx.stop)
    if top == left == bottom == right == 0:
        return block
    pad = [(0, 0)] * (block.ndim - 2) + [(top, bottom), (left, right)]
    return np.pad(block, pad)


def _ts_block(counts: np.ndarray, background: np.ndarray, exposure: np.ndarray, mask: np.ndarray, *,
              window: Any, core: tuple[slice, slice], kernel: np.ndarray, names: tuple[str, ...],
              n_sigma: float, n_sigma_ul: float, tolerance: float, max_niter: int) -> np.ndarray:
    """TS-map channels of one overlapped block (energy reduced to 1): shape (n_channels, 1, ny, nx).

    ``exposure`` is the source template per pixel for norm 1 (exposure x reference flux per bin).
    """
    from xgamma.convolution import convolve_block

    radius = kernel.shape[-1] // 2
    core = tuple(slice(*c.indices(size)[:2]) for c, size in zip(core, counts.shape[-2:]))
    usable = mask & np.isfinite(counts) & np.isfinite(background) & np.isfinite(exposure)
    n = _padded(np.where(usable, counts, 0.0), core, radius)
    b = np.where(usable, background, 0.0)
    e = _padded(np.where(usable, exposure, 0.0), core, radius)
    g = e / np.maximum(_padded(b, core, radius), MU_MIN)  # m / b for a kernel value of 1
    cy, cx = core
    # Positions fitted (as Gammapy): some energy bin unmasked and background there.
    valid = usable[..., cy, cx].any(axis=0) & (b[..., cy, cx].sum(axis=0) > 0)
    n_energy, ny, nx = n.shape[0], valid.shape[0], valid.shape[1]
    values, runs = kernel_offsets(kernel)
    n_entries = n_energy * values.shape[1]
    # Template sums M = sum over bins of the kernel-weighted template around each pixel: one FFT
    # convolution per bin (with the flipped kernel: the footprints correlate).
    model_sum = sum(convolve_block(e[i], kernel[i, ::-1, ::-1])[radius:radius + ny, radius:radius + nx]
                    for i in range(n_energy))
    n_windows, g_windows = _windows(n, kernel.shape[-1]), _windows(g, kernel.shape[-1])
    out = np.full((len(names), 1, ny, nx), np.nan)
    rows_per_chunk = max(1, _CHUNK_ENTRIES // max(n_entries * nx, 1))
    for y0 in range(0, ny, rows_per_chunk):
        y1 = min(y0 + rows_per_chunk, ny)
        todo = valid[y0:y1].ravel()
        if not todo.any():
            continue
        counts_fp, ratio_fp = _footprints(n_windows, g_windows, values, runs, y0, y1)
        sums = model_sum[y0:y1].ravel()
        if not todo.all():
            counts_fp, ratio_fp, sums = counts_fp[:, todo], ratio_fp[:, todo], sums[todo]
        fits = NormFits(counts_fp, ratio_fp, sums)
        fit = fits.best(tolerance=tolerance, max_niter=max_niter)
        result = {"ts": fit.ts, "norm": fit.norm, "norm_err": fit.norm_err * n_sigma,
                  "npred_excess": fit.norm * sums, "niter": fit.niter, "success": fit.success}
        options = dict(tolerance=tolerance, max_niter=max_niter)
        if "norm_ul" in names:
            result["norm_ul"] = fits.confidence(fit, n_sigma=n_sigma_ul, **options)
        if "norm_errn" in names:
            low = fits.confidence(fit, n_sigma=n_sigma, side="lower", **options)
            high = fits.confidence(fit, n_sigma=n_sigma, **options)
            result.update(norm_errn=fit.norm - low, norm_errp=high - fit.norm)
        target = out[:, 0, y0:y1].reshape(len(names), -1)
        for channel, name in enumerate(names):
            if todo.all():
                target[channel] = result[name]
            else:
                target[channel, todo] = result[name]
    return out


def _windows(a: np.ndarray, size: int) -> np.ndarray:
    """Sliding (size x size) windows of the last two axes: ``[e, i, j, dy, dx] = a[e, i + dy, j + dx]``."""
    from numpy.lib.stride_tricks import sliding_window_view

    return sliding_window_view(a, (size, size), axis=(-2, -1))


def _footprints(n: np.ndarray, g: np.ndarray, values: np.ndarray, runs: list, y0: int,
                y1: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts and ``m / b`` over the footprints of core rows ``y0:y1``: shape (entries, pixels).

    ``n`` and ``g`` are window views (`_windows`) of the padded maps. Layout (energy, kernel
    entry, row, column), so that each kernel row's entries are one strided copy.
    """
    n_energy, n_values = values.shape
    nx = n.shape[2]
    counts_fp = np.empty((n_energy, n_values, y1 - y0, nx))
    ratio_fp = np.empty_like(counts_fp)
    start = 0
    for dy, lo, hi in runs:
        stop = start + hi - lo + 1
        counts_fp[:, start:stop] = n[:, y0:y1, :, dy, lo:hi + 1].transpose(0, 3, 1, 2)
        np.multiply(g[:, y0:y1, :, dy, lo:hi + 1].transpose(0, 3, 1, 2), values[:, start:stop, None, None],
                    out=ratio_fp[:, start:stop])
        start = stop
    n_entries = n_energy * n_values
    return counts_fp.reshape(n_entries, -1), ratio_fp.reshape(n_entries, -1)


def _reference_fluxes(spectrum: Any, edges: np.ndarray) -> np.ndarray:
    """Integral flux of the reference spectrum in each energy bin (cm-2 s-1)."""
    import astropy.units as u

    from xgamma.models.spectral import PowerLaw

    spectrum = PowerLaw() if spectrum is None else spectrum
    if not hasattr(spectrum, "integral"):
        raise EstimatorError(f"spectrum: expected a spectral model, got {type(spectrum).__name__}")
    return spectrum.integral(edges[:-1] * u.TeV, edges[1:] * u.TeV).to_value("cm-2 s-1")


def _inputs(maps: xr.Dataset | MapDataset) -> tuple[dict[str, xr.DataArray], Any]:
    """counts, background (prediction of all models), exposure and mask maps; and the PSF."""
    from xgamma.fit.dataset import MapDataset

    if isinstance(maps, MapDataset):
        from xgamma.estimators.model_maps import npred_map

        arrays = {"counts": maps.counts, "exposure": maps.exposure, "background": npred_map(maps)}
        masks = [m for m in (maps.mask_safe, maps.mask_fit) if m is not None]
        psf = maps.psf
    elif isinstance(maps, xr.Dataset):
        missing = [name for name in ("counts", "exposure", "background") if name not in maps]
        if missing:
            raise EstimatorError(f"TS map needs dataset variables {missing} (background: the prediction of all "
                                 "fitted models); have {sorted(maps.data_vars)}")
        arrays = {name: maps[name] for name in ("counts", "exposure", "background")}
        masks = [maps[name] for name in ("mask_safe", "mask_fit") if name in maps]
        psf = None
    else:
        raise EstimatorError(f"TS map input must be an xarray.Dataset of maps or a MapDataset, got {type(maps).__name__}")
    for name, da in arrays.items():
        if da.dims != ("energy", "lat", "lon"):
            raise EstimatorError(f"{name}: dims {da.dims} are not ('energy', 'lat', 'lon')")
    shape = arrays["counts"].shape
    for name, da in arrays.items():
        if da.shape != shape:
            raise EstimatorError(f"{name}: shape {da.shape} differs from counts {shape}")
    mask = None
    for m in masks:
        m = m.astype(bool)
        if m.dims not in (("energy", "lat", "lon"), ("lat", "lon")):
            raise EstimatorError(f"mask: dims {m.dims} are not ('energy', 'lat', 'lon') or ('lat', 'lon')")
        mask = m if mask is None else mask & m
    if mask is not None and mask.dims == ("lat", "lon"):
        mask = mask.expand_dims(energy=shape[0]).transpose("energy", "lat", "lon")
    arrays["mask"] = mask
    return arrays, psf


def ts_map(
    maps: xr.Dataset | MapDataset,
    *,
    psf: Any = None,
    morphology: str = "point",
    sigma: Any = None,
    max_radius: Any = None,
    kernel: np.ndarray | None = None,
    spectrum: Any = None,
    energy_edges: Any = None,
    n_sigma: float = 1.0,
    n_sigma_ul: float = 2.0,
    selection_optional: Sequence[str] = ("ul",),
    tolerance: float = 1e-3,
    max_niter: int = 100,
) -> xr.Dataset:
    """TS, sqrt(TS), flux, flux error and upper-limit maps of a point-like or Gaussian source.

    At each pixel the norm of the kernel (the source's expected counts shape) is fitted by the
    Cash statistic with the background fixed to the prediction of all fitted models; TS is the
    statistic difference to norm 0 (Stewart 2009; Gammapy's ``TSMapEstimator``). Negative norms
    are allowed down to the value keeping the prediction >= 0.

    Parameters
    ----------
    maps : `xarray.Dataset` or `~xgamma.fit.MapDataset`
        Maps with dims ("energy", "lat", "lon"): ``counts``, ``exposure`` (area x time) and
        ``background`` (the prediction of all fitted models), optional ``mask_safe`` /
        ``mask_fit``; or a MapDataset, whose models' total prediction is the background (so
        fitted sources are kept in the null hypothesis) and whose PSF is the default ``psf``.
        An image has one energy bin; a cube is fitted jointly over its bins.
    psf : `~xgamma.fit.PSFKernel` or numpy.ndarray, optional
        PSF kernel(s) on the map's pixels, one per energy bin or one for all.
    morphology : {"point", "gaussian"}
        Source shape. Default is "point".
    sigma : str or `~astropy.units.Quantity`, optional
        Width of the Gaussian (angle).
    max_radius : str or `~astropy.units.Quantity`, optional
        Kernel truncation radius (angle); see `~xgamma.estimators.ts_kernel`.
    kernel : numpy.ndarray, optional
        A ready kernel (n_energy or 1, k, k), instead of ``psf``/``morphology``/``sigma``.
    spectrum : `~xgamma.models.spectral.SpectralModel`, optional
        Assumed source spectrum: it converts counts to flux. Default is a power law of index 2
        (Gammapy's default). An image's exposure must have been squashed with the same spectrum.
    energy_edges : `~astropy.units.Quantity` or str list, optional
        Group edges (a subset of the map's bin edges): one map per group. Default: one map
        over all bins.
    n_sigma : float
        Errors are ``n_sigma`` sigma. Default is 1.
    n_sigma_ul : float
        Upper limits where the statistic rises by ``n_sigma_ul**2`` above its minimum: 2 gives
        ~95 % (two-sided) confidence, the Gammapy default. Default is 2.
    selection_optional : sequence of {"ul", "errn-errp"}
        Optional outputs. Default is ("ul",).
    tolerance : float
        Fit convergence, as a fraction of the norm's error. Default is 1e-3.
    max_niter : int
        Most Newton iterations per pixel. Default is 100.

    Returns
    -------
    maps : `xarray.Dataset`
        Dims ("energy", "lat", "lon") with one energy bin per group: ``ts``, ``sqrt_ts``
        (sign of the norm x sqrt(TS), sigma), ``norm``, ``norm_err``, ``flux`` and ``flux_err``
        (integral flux of the spectrum over the group, cm-2 s-1), ``npred_excess`` (counts),
        ``niter``, ``success``, and on request ``norm_ul``/``flux_ul`` and
        ``norm_errn``/``norm_errp``/``flux_errn``/``flux_errp``. NaN where no fit is possible
        (masked, or no background). Lazy for dask-backed input (one task per block).
    """
    import astropy.units as u

    from xgamma.estimators.ts_kernel import ts_kernel
    from xgamma.maps import map_geometry

    arrays, dataset_psf = _inputs(maps)
    unknown = set(selection_optional) - set(SELECTION_OPTIONAL)
    if unknown:
        raise EstimatorError(f"selection_optional: unknown {sorted(unknown)}; choose from {list(SELECTION_OPTIONAL)}")
    for name, value in (("n_sigma", n_sigma), ("n_sigma_ul", n_sigma_ul), ("tolerance", tolerance)):
        if not (np.isfinite(value) and value > 0):
            raise EstimatorError(f"{name} must be a positive number, got {value!r}")
    counts = arrays["counts"]
    geometry = map_geometry(counts)
    shape_name = morphology if kernel is None else "kernel"
    if kernel is None:
        kernel = ts_kernel(dataset_psf if psf is None else psf, pixel_scale=geometry.pixel_scale,
                           morphology=morphology, sigma=sigma, max_radius=max_radius)
    else:
        kernel = ts_kernel(kernel, pixel_scale=geometry.pixel_scale, max_radius=max_radius)
    n_energy = counts.shape[0]
    if kernel.shape[0] not in (1, n_energy):
        raise EstimatorError(f"kernel: {kernel.shape[0]} energy bins for maps with {n_energy}")
    kernel = np.broadcast_to(kernel, (n_energy, *kernel.shape[1:]))
    edges = geometry.energy_edges.to_value("TeV")
    groups = energy_groups(edges, energy_edges)
    reference = _reference_fluxes(spectrum, edges)
    try:
        exposure_unit = float(u.Unit(arrays["exposure"].attrs.get("units", "")).to("cm2 s"))
    except (u.UnitConversionError, ValueError):
        raise EstimatorError(f"exposure: units {arrays['exposure'].attrs.get('units')!r} are not an area x time "
                             "(e.g. 'm2 s')") from None
    names = tuple(_channels(selection_optional))
    template = arrays["exposure"].data * (exposure_unit * reference)[:, None, None]
    mask = np.isfinite(counts.data) if arrays["mask"] is None else arrays["mask"].data
    blocks = []
    for group in groups:
        inputs = [_single_energy_chunk(a[group]) for a in (counts.data, arrays["background"].data, template)]
        inputs.append(_single_energy_chunk(mask[group] if mask.ndim == 3 else mask))
        blocks.append(_apply(inputs, kernel=np.ascontiguousarray(kernel[group]), names=names, n_sigma=n_sigma,
                             n_sigma_ul=n_sigma_ul, tolerance=tolerance, max_niter=max_niter))
    return _result(blocks, names, counts, geometry, edges, groups, reference, dict(
        estimator="ts", morphology=shape_name, n_sigma=n_sigma,
        n_sigma_ul=n_sigma_ul, kernel_radius_pix=int(kernel.shape[-1] // 2)))


def _single_energy_chunk(data: Any) -> Any:
    import dask.array as da

    if isinstance(data, da.Array) and data.ndim == 3 and len(data.chunks[0]) > 1:
        return data.rechunk({0: -1})
    return data


def _apply(inputs: list, *, kernel: np.ndarray, names: tuple[str, ...], **options: Any) -> Any:
    """One group's channels: (n_channels, 1, n_lat, n_lon), lazy for dask inputs."""
    import dask.array as da

    from xgamma.blocks import overlap_apply
    from xgamma.convolution import kernel_radius

    if any(isinstance(a, da.Array) for a in inputs):
        inputs = [da.asarray(a) for a in inputs]
    return overlap_apply(_ts_block, *inputs, depth=kernel_radius(kernel), n_out=len(names), keep_chunks=False,
                         reduce_first=True, kernel=kernel, names=names, **options)


def _result(blocks: list, names: tuple[str, ...], counts: xr.DataArray, geometry: Any, edges: np.ndarray,
            groups: list[slice], reference: np.ndarray, attrs: dict) -> xr.Dataset:
    """The output Dataset: channels as variables, one energy bin per group, flux maps derived."""
    import dask.array as da

    from xgamma.blocks import split_channels

    lazy = any(isinstance(b, da.Array) for b in blocks)
    stacked = (da.concatenate if lazy else np.concatenate)(blocks, axis=1)
    channels = split_channels(stacked, names)
    group_edges = np.array([edges[g.start] for g in groups] + [edges[groups[-1].stop]])
    image = geometry.with_energy(group_edges * geometry.energy_edges.unit)
    # Coordinates objects, not dicts: the sky and energy indexes (xgamma.geometry.indexes) are kept.
    coords = counts.drop_vars([k for k, c in counts.coords.items() if "energy" in c.dims]).coords
    coords = coords.assign(image.energy_coords())
    dims = ("energy", "lat", "lon")
    units = {"ts": "", "norm": "", "norm_err": "", "npred_excess": "", "niter": "", "success": "",
             "norm_ul": "", "norm_errn": "", "norm_errp": ""}
    variables = {name: xr.Variable(dims, channels[name], {"units": units[name]}) for name in names}
    out = xr.Dataset(variables, coords=coords)
    out["success"] = out["success"] == 1
    out["sqrt_ts"] = np.sign(out["norm"]) * np.sqrt(out["ts"])
    out["sqrt_ts"].attrs["units"] = ""
    flux_ref = xr.DataArray(np.array([reference[g].sum() for g in groups]), dims=("energy",))
    for name in [n for n in names if n.startswith("norm")]:
        flux = f"flux{name[4:]}"
        out[flux] = out[name] * flux_ref
        out[flux].attrs["units"] = "cm-2 s-1"
    out.attrs = {**attrs, "flux_ref": flux_ref.values.tolist()}
    return out


@dataclass(frozen=True)
class TSMapEstimator:
    """TS maps as an estimator object (``name = "ts"``); see `ts_map` for the parameters."""

    name: ClassVar[str] = "ts"

    morphology: str = "point"
    sigma: Any = None
    max_radius: Any = None
    spectrum: Any = None
    energy_edges: Any = None
    n_sigma: float = 1.0
    n_sigma_ul: float = 2.0
    selection_optional: tuple[str, ...] = field(default=("ul",))
    tolerance: float = 1e-3
    max_niter: int = 100

    def run(self, maps: xr.Dataset | MapDataset, *, psf: Any = None) -> xr.Dataset:
        """TS maps of ``maps`` (see `ts_map`)."""
        return ts_map(maps, psf=psf, morphology=self.morphology, sigma=self.sigma, max_radius=self.max_radius,
                      spectrum=self.spectrum, energy_edges=self.energy_edges, n_sigma=self.n_sigma,
                      n_sigma_ul=self.n_sigma_ul, selection_optional=self.selection_optional,
                      tolerance=self.tolerance, max_niter=self.max_niter)
