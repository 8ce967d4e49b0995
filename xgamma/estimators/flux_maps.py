"""Flux, flux-error, upper-limit and sensitivity maps from correlated ON-OFF (ring) or known-background counts.

Gammapy's ``ExcessMapEstimator`` (with ``selection_optional=["errn-errp", "ul", "sensitivity"]``)
and the H.E.S.S. Galactic plane survey flux maps (HGPS, A&A 612, A1, 2018, section 3.3): per
pixel, the counts within a top-hat correlation radius give the excess, its errors and upper limit
from the W (on-off) or Cash (known background) statistic (`xgamma.estimators.counts_statistics`),
and the flux is the excess divided by the mean exposure within the same top-hat, for an assumed
source spectrum:

.. math::
    F = \\frac{N_{excess}}{\\langle \\varepsilon \\rangle} \\frac{\\int_{band} \\phi}{\\int_{map} \\phi},

where ``epsilon`` is the exposure of the map's energy band weighted by the spectrum ``phi`` (the
squashed exposure of `xgamma.makers.squash_energy`), and ``band`` the energy range the flux is
quoted in (HGPS: above 1 TeV for a power law of index 2.3). One task per block: the correlation,
the statistics and the flux of a block are computed together; lazy and chunk-invariant.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from xgamma.estimators import counts_statistics as stats
from xgamma.exceptions import EstimatorError

__all__ = ["flux_maps", "survey_flux_maps", "FLUX_SELECTION"]

#: Optional outputs of `flux_maps`.
FLUX_SELECTION = ("errn-errp", "ul", "sensitivity")


def _flux_channels(on_off: bool, selection: Sequence[str]) -> tuple[str, ...]:
    base = ("counts", "off", "alpha", "background") if on_off else ("counts", "background")
    names = [*base, "excess", "excess_error", "significance", "exposure", "flux", "flux_err"]
    if "errn-errp" in selection:
        names += ["flux_errn", "flux_errp"]
    if "ul" in selection:
        names.append("flux_ul")
    if "sensitivity" in selection:
        names.append("flux_sensitivity")
    return tuple(names)


def _flux_block(*blocks: np.ndarray, window: Any, core: tuple[slice, slice], kernel: np.ndarray, on_off: bool,
                correlate_off: bool, names: tuple[str, ...], flux_factor: np.ndarray, n_sigma: float,
                n_sigma_ul: float, n_sigma_sensitivity: float, threshold: tuple[float, float] | None) -> np.ndarray:
    """Correlated counts, statistics and fluxes of one (overlapped) block: (n_channels, ..., ny, nx)."""
    from xgamma.convolution import convolve_block
    from xgamma.estimators.significance import _known_background_core, _on_off_core

    *maps, exposure = blocks
    cy, cx = core
    if on_off:
        counts = _on_off_core(*maps, window=window, core=core, kernel=kernel, correlate_off=correlate_off)
        n_on, n_off, alpha, background, excess = counts[:5]
        mask = maps[3] > 0  # acceptance_off: pixels with an off measurement
    else:
        counts = _known_background_core(*maps, window=window, core=core, kernel=kernel, correlate_off=False)
        n_on, background, excess = counts[0], counts[1], counts[2]
        mask = np.isfinite(maps[1]) & (maps[1] > 0)
    mask = np.broadcast_to(mask, np.broadcast_shapes(mask.shape, exposure.shape))
    # Mean exposure over the top-hat, counting only pixels that are measured (Gammapy's convention).
    sums = convolve_block(np.stack([np.where(mask, exposure, 0.0), mask.astype(float)]), kernel)[..., cy, cx]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_exposure = sums[0] / sums[1]
        # flux (cm-2 s-1) per excess count; no flux without exposure
        to_flux = np.where(mean_exposure > 0, flux_factor / mean_exposure, np.nan)
    out = {"exposure": mean_exposure, "flux": excess * to_flux, "flux_err": counts[len(counts) - 2] * n_sigma * to_flux}
    if "flux_errn" in names:
        errn, errp = stats.on_off_errors(n_on, n_off, alpha, n_sigma=n_sigma) if on_off else \
            stats.cash_errors(n_on, n_sigma=n_sigma)
        out.update(flux_errn=errn * to_flux, flux_errp=errp * to_flux)
    if "flux_ul" in names:
        ul = stats.on_off_upper_limit(n_on, n_off, alpha, n_sigma=n_sigma_ul) if on_off else \
            stats.cash_upper_limit(n_on, background, n_sigma=n_sigma_ul)
        out["flux_ul"] = ul * to_flux
    if "flux_sensitivity" in names:
        excess_5 = stats.on_off_sensitivity(n_off, alpha, n_sigma=n_sigma_sensitivity) if on_off else \
            stats.cash_sensitivity(background, n_sigma=n_sigma_sensitivity)
        if threshold is not None:  # at least gamma_min gammas and a fraction of the background
            excess_5 = np.maximum(np.maximum(excess_5, threshold[0]), threshold[1] * background)
        out["flux_sensitivity"] = excess_5 * to_flux
    result = np.empty((len(names), *excess.shape))
    result[: len(counts)] = counts
    for i, name in enumerate(names[len(counts):], start=len(counts)):
        result[i] = out[name]
    nan = np.isnan(counts[-1])  # no off measurement (or no background): no value, as the significance
    result[:, nan] = np.nan
    return result


def _flux_factors(edges: np.ndarray, spectrum: Any, energy_range: Any, n_bins: int) -> np.ndarray:
    """Per energy bin: integral flux of the spectrum in the quoted band over that in the bin."""
    import astropy.units as u

    from xgamma.models.spectral import PowerLaw
    from xgamma.units import parse_quantity

    spectrum = PowerLaw() if spectrum is None else spectrum
    if not hasattr(spectrum, "integral"):
        raise EstimatorError(f"spectrum: expected a spectral model, got {type(spectrum).__name__}")
    lo, hi = edges[:-1], edges[1:]
    if n_bins == 1:
        lo, hi = edges[:1], edges[-1:]
    in_bins = spectrum.integral(lo * u.TeV, hi * u.TeV).to_value("cm-2 s-1")
    if energy_range is None:
        return np.ones(lo.size)
    band = [np.inf if e is None else parse_quantity(e, "TeV", name="energy_range").to_value("TeV")
            for e in energy_range]
    if len(band) != 2 or not band[0] < band[1]:
        raise EstimatorError(f"energy_range must be (min, max) with min < max (max may be None), got {energy_range!r}")
    quoted = spectrum.integral(band[0] * u.TeV, band[1] * u.TeV).to_value("cm-2 s-1")
    if not (np.isfinite(quoted) and quoted > 0):
        raise EstimatorError(f"spectrum: its integral over energy_range {energy_range!r} is not finite and > 0 "
                             "(an index <= 1 has no integral to infinity)")
    return quoted / in_bins


def flux_maps(
    dataset: xr.Dataset,
    *,
    exposure: xr.DataArray | None = None,
    correlation_radius: Any = "0.1 deg",
    correlate_off: bool = True,
    spectrum: Any = None,
    energy_range: Sequence[Any] | None = None,
    n_sigma: float = 1.0,
    n_sigma_ul: float = 2.0,
    n_sigma_sensitivity: float = 5.0,
    selection_optional: Sequence[str] = ("errn-errp", "ul"),
    sensitivity_threshold: tuple[float, float] | None = None,
) -> xr.Dataset:
    """Correlated excess, significance, flux, flux error, upper-limit and sensitivity maps.

    Parameters
    ----------
    dataset : `xarray.Dataset`
        A ring background result (``counts``, ``off``, ``alpha``, ``acceptance``,
        ``acceptance_off``; see `~xgamma.estimators.significance_maps`) or maps with ``counts``
        and a known ``background``; dims (..., "lat", "lon"). May hold ``exposure``.
    exposure : `xarray.DataArray`, optional
        Exposure (area x time) of the same maps, squashed with ``spectrum`` for an image.
        Default: ``dataset["exposure"]``.
    correlation_radius : str or `~astropy.units.Quantity`
        Top-hat radius (angle). Default is "0.1 deg".
    correlate_off : bool
        Correlate the off counts too (Gammapy's default) or not (H.E.S.S. survey maps); see
        `~xgamma.estimators.significance_maps`. Default is True.
    spectrum : `~xgamma.models.spectral.SpectralModel`, optional
        Assumed source spectrum. Default is a power law of index 2.
    energy_range : (min, max), optional
        Energy band the flux is quoted in (energies; ``max=None`` for no upper end), e.g.
        ``("1 TeV", None)``. Default: the map's own band (per energy bin for a cube).
    n_sigma : float
        Errors are ``n_sigma`` sigma. Default is 1.
    n_sigma_ul : float
        Upper limits where the statistic rises by ``n_sigma_ul**2``. Default is 2.
    n_sigma_sensitivity : float
        Significance of the sensitivity flux. Default is 5.
    selection_optional : sequence of {"errn-errp", "ul", "sensitivity"}
        Optional outputs. Default is ("errn-errp", "ul").
    sensitivity_threshold : (float, float), optional
        ``(gamma_min, background fraction)``: the sensitivity excess is at least ``gamma_min``
        counts and that fraction of the background (Gammapy's ``apply_threshold_sensitivity``;
        HGPS maps use none). Default is None.

    Returns
    -------
    maps : `xarray.Dataset`
        Correlated ``counts`` (and ``off``, ``alpha``), ``background``, ``excess``,
        ``excess_error`` (counts), ``significance`` (sigma), ``exposure`` (the top-hat mean, cm2 s),
        ``flux`` and ``flux_err`` (cm-2 s-1), on request ``flux_errn``/``flux_errp``,
        ``flux_ul`` and ``flux_sensitivity``. NaN where there is no off measurement (or no
        background). Lazy for dask-backed input.
    """
    import astropy.units as u

    from xgamma.maps import dataset_from_arrays
    from xgamma.blocks import overlap_apply, split_channels
    from xgamma.convolution import kernel_radius
    from xgamma.estimators.correlate import correlation_kernel
    from xgamma.maps import in_order, map_geometry

    unknown = set(selection_optional) - set(FLUX_SELECTION)
    if unknown:
        raise EstimatorError(f"selection_optional: unknown {sorted(unknown)}; choose from {list(FLUX_SELECTION)}")
    if "counts" not in dataset:
        raise EstimatorError("flux maps need a 'counts' variable")
    if exposure is None and "exposure" in dataset:
        from xgamma.makers.squash import full_band_exposure

        # Squashed images weight each pixel over its own valid energy range: per unit flux in
        # the map's band instead, the convention of the flux formula above.
        exposure = full_band_exposure(dataset, spectrum)
    if exposure is None:
        raise EstimatorError("flux maps need an exposure: pass exposure= or add an 'exposure' variable")
    try:
        to_cm2_s = float(u.Unit(exposure.attrs.get("units", "")).to("cm2 s"))
    except (u.UnitConversionError, ValueError):
        raise EstimatorError(f"exposure: units {exposure.attrs.get('units')!r} are not an area x time "
                             "(e.g. 'm2 s')") from None
    counts = dataset["counts"]
    dims = counts.dims
    spatial = (*[d for d in dims if d not in ("lat", "lon")], "lat", "lon")
    geometry = map_geometry(counts)
    kernel = correlation_kernel(correlation_radius, geometry.pixel_scale)
    on_off = "off" in dataset
    if on_off:
        missing = {"alpha", "acceptance", "acceptance_off"} - set(dataset.data_vars)
        if missing:
            raise EstimatorError(f"on-off flux maps need dataset variables {sorted(missing)}")
        inputs = ["counts", "off", "alpha" if correlate_off else "acceptance", "acceptance_off"]
    elif "background" in dataset:
        inputs = ["counts", "background"]
    else:
        raise EstimatorError("flux maps need 'off' (ring background) or 'background' variables")
    arrays = [in_order(dataset.variables[name], spatial).data for name in inputs]
    expo_dims = tuple(d for d in spatial if d in exposure.dims)
    if set(exposure.dims) - set(spatial) or exposure.shape[-2:] != counts.shape[-2:]:
        raise EstimatorError(f"exposure: dims {exposure.dims} / shape {exposure.shape} do not match the counts "
                             f"{dims} / {counts.shape}")
    arrays.append(in_order(exposure.variable, expo_dims).data * to_cm2_s)
    if geometry.energy_edges is None:
        if energy_range is not None:
            raise EstimatorError("energy_range needs maps with an energy axis (energy_min / energy_max coords)")
        factor = np.ones(1)
    else:
        factor = _flux_factors(geometry.energy_edges.to_value("TeV"), spectrum, energy_range,
                               counts.sizes.get("energy", 1))
    if "energy" in spatial:  # per energy bin, broadcast over (energy, lat, lon) blocks
        factor = factor.reshape((-1,) + (1,) * (len(spatial) - 1 - spatial.index("energy")))
    names = _flux_channels(on_off, selection_optional)
    out = overlap_apply(_flux_block, *arrays, depth=kernel_radius(kernel), n_out=len(names), keep_chunks=False,
                        kernel=kernel, on_off=on_off, correlate_off=correlate_off, names=names,
                        flux_factor=factor, n_sigma=n_sigma, n_sigma_ul=n_sigma_ul,
                        n_sigma_sensitivity=n_sigma_sensitivity, threshold=sensitivity_threshold)
    result = dataset_from_arrays(in_order(counts, spatial), split_channels(out, names))
    units = {"exposure": "cm2 s", "significance": ""}
    for name in result.data_vars:
        result[name].attrs["units"] = "cm-2 s-1" if name.startswith("flux") else units.get(name, "")
    if spatial != dims:
        result = result.transpose(*dims)
    result.attrs = {**dataset.attrs, "estimator": "flux", "correlation_radius": str(correlation_radius),
                    "correlate_off": int(correlate_off), "n_sigma": n_sigma, "n_sigma_ul": n_sigma_ul,
                    "energy_range": "map band" if energy_range is None else str(tuple(energy_range))}
    return result


def survey_flux_maps(
    dataset: xr.Dataset,
    *,
    exposure: xr.DataArray | None = None,
    correlation_radii: Sequence[Any] = ("0.1 deg", "0.2 deg"),
    spectrum: Any = None,
    energy_range: Sequence[Any] = ("1 TeV", None),
    selection_optional: Sequence[str] = ("errn-errp", "ul", "sensitivity"),
) -> xr.Dataset:
    """H.E.S.S. survey (HGPS) flux maps: flux above 1 TeV for a power law of index 2.3, at two radii.

    `flux_maps` with the survey's conventions (off counts not correlated a second time), once
    per correlation radius, along a new ``correlation_radius`` dim (deg).

    Parameters
    ----------
    dataset, exposure
        As for `flux_maps` (the exposure of an image squashed with ``spectrum``).
    correlation_radii : sequence of angles
        Default is ("0.1 deg", "0.2 deg") (point-like and extended sources in HGPS).
    spectrum : `~xgamma.models.spectral.SpectralModel`, optional
        Default: ``PowerLaw(index=2.3)``.
    energy_range : (min, max)
        Default: above 1 TeV.
    selection_optional : sequence of str
        Default: errors, upper limits and sensitivity.

    Returns
    -------
    maps : `xarray.Dataset`
        The variables of `flux_maps` with a leading ``correlation_radius`` dim.
    """
    from xgamma.models.spectral import PowerLaw
    from xgamma.units import parse_angle

    spectrum = PowerLaw(index=2.3) if spectrum is None else spectrum
    maps = [flux_maps(dataset, exposure=exposure, correlation_radius=radius, correlate_off=False,
                      spectrum=spectrum, energy_range=energy_range, selection_optional=selection_optional)
            for radius in correlation_radii]
    radii = [parse_angle(r, name="correlation_radii").to_value("deg") for r in correlation_radii]
    out = xr.concat(maps, dim=xr.DataArray(radii, dims="correlation_radius", attrs={"units": "deg"}),
                    combine_attrs="drop_conflicts")
    out.attrs.update(estimator="survey flux", spectrum=repr(spectrum))
    return out
