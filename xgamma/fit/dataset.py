"""Map dataset: counts, exposure, background, PSF kernel and masks, with models attached.

Building a :class:`MapDataset` computes nothing; the first call that needs values (``npred``,
``stat_sum``, a fit) loads the maps into numpy once and caches them (the fit evaluates the model
hundreds of times on the same arrays).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import astropy.units as u
import numpy as np
import xarray as xr

from xgamma.exceptions import FitError, GeometryError, UnitError
from xgamma.fit.npred import DatasetArrays, npred_background, npred_source
from xgamma.fit.psf_kernel import PSFKernel
from xgamma.fit.statistic import Likelihood, cash_significance, cash_sum
from xgamma.makers.edisp import EDispKernel
from xgamma.models.background_model import BackgroundModel
from xgamma.models.sky_model import SkyModel
from xgamma.models.spatial import PixelGrid

__all__ = ["MapDataset", "residual_images"]


def _as_cube(da: xr.DataArray, name: str, energy_dims: tuple[str, ...] = ("energy",)) -> xr.DataArray:
    if not isinstance(da, xr.DataArray):
        raise GeometryError(f"{name}: expected an xarray.DataArray map, got {type(da).__name__}")
    if da.dims == ("lat", "lon"):
        raise GeometryError(f"{name}: map has no 'energy' dim; images keep a length-1 energy dim")
    if len(da.dims) != 3 or da.dims[0] not in energy_dims or da.dims[1:] != ("lat", "lon"):
        expected = " or ".join(str((d, "lat", "lon")) for d in energy_dims)
        raise GeometryError(f"{name}: dims {da.dims} are not {expected}")
    return da


def _kernels(value, kind: type, name: str) -> tuple[object | None, dict]:
    """A kernel shared by all sources, or a mapping of source name -> kernel."""
    if value is None or isinstance(value, kind):
        return value, {}
    if isinstance(value, Mapping) and all(isinstance(v, kind) for v in value.values()):
        return None, dict(value)
    raise FitError(f"{name}: expected a {kind.__name__} or a mapping of source name -> {kind.__name__}, "
                   f"got {type(value).__name__}")


def residual_images(residuals: xr.Dataset) -> xr.Dataset:
    """Residual maps (``npred``, ``residual``, ``residual_significance``) summed over energy.

    Counts and predictions are summed and the significance recomputed from the sums (a cube's
    per-bin significances do not add). Images are returned unchanged.
    """
    if residuals.sizes.get("energy", 1) == 1:
        return residuals
    from xgamma.makers.squash import squash_energy

    summed = squash_energy(residuals[["npred", "residual"]])
    significance = cash_significance((summed["residual"] + summed["npred"]).values, summed["npred"].values)
    return summed.assign(residual_significance=summed["residual"].copy(data=significance))


class MapDataset:
    """Counts, exposure, background, PSF and energy-dispersion kernels and masks of one analysis.

    Parameters
    ----------
    counts : xarray.DataArray
        Counts, dims (energy, lat, lon) in reconstructed energy (an image has a length-1
        energy dim).
    exposure : xarray.DataArray
        Exposure (``attrs["units"]`` an area x time, e.g. ``"m2 s"``): the same shape as
        ``counts`` without energy dispersion (for a squashed image, the spectrum-weighted
        exposure of each pixel's valid range); dims (energy_true, lat, lon) with it.
    background : xarray.DataArray, optional
        Background counts, same shape as ``counts``.
    psf : PSFKernel or mapping of source name -> PSFKernel, optional
        Kernel(s) (one per exposure bin, or one shared by all bins), for every source or per
        source (each at its own position; every sky model must then have one).
    edisp : EDispKernel or mapping of source name -> EDispKernel, optional
        Migration from the exposure's true-energy bins to the counts' bins (required when the
        exposure has its own true-energy axis), for every source or per source.
    band : (xarray.DataArray, xarray.DataArray), optional
        Squashed images: the lower and upper edges (TeV) of each pixel's valid energy range,
        set by `from_maps` from ``safe_energy_min`` / ``safe_energy_max``. Source fluxes are
        then integrated over each pixel's range.
    mask_safe, mask_fit : xarray.DataArray, optional
        Boolean masks (pixels used in the statistic are ``mask_safe & mask_fit``); a 2-D mask
        applies to every energy bin.
    models : list, optional
        :class:`SkyModel` and (at most one) :class:`BackgroundModel`. A background map without a
        background model is used as is.
    name : str
        Dataset name.
    point_method : {"exact", "bilinear"}
        Point sources: ``"exact"`` (default) integrates the PSF over the pixels around the true
        sub-pixel position, so the prediction and the likelihood are smooth in position;
        ``"bilinear"`` spreads the flux over the 4 nearest pixel centres and convolves with the
        centred kernel, as Gammapy does (its prediction is piecewise linear in position, with
        kinks at pixel centres that can trap MIGRAD and shrink HESSE errors).
    """

    def __init__(
        self,
        counts: xr.DataArray,
        exposure: xr.DataArray,
        background: xr.DataArray | None = None,
        *,
        psf: PSFKernel | Mapping[str, PSFKernel] | None = None,
        edisp: EDispKernel | Mapping[str, EDispKernel] | None = None,
        band: tuple[xr.DataArray, xr.DataArray] | None = None,
        mask_safe: xr.DataArray | None = None,
        mask_fit: xr.DataArray | None = None,
        models: list | None = None,
        name: str = "stacked",
        point_method: Literal["exact", "bilinear"] = "exact",
    ) -> None:
        self.counts = _as_cube(counts, "counts")
        self.exposure = _as_cube(exposure, "exposure", ("energy", "energy_true"))
        self.background = None if background is None else _as_cube(background, "background")
        if self.background is not None and self.background.shape != self.counts.shape:
            raise GeometryError(f"background: shape {self.background.shape} differs from counts {self.counts.shape}")
        try:
            self._exposure_factor = float(u.Unit(self.exposure.attrs.get("units", "")).to("cm2 s"))
        except (u.UnitConversionError, ValueError):
            raise UnitError(f"exposure: units {self.exposure.attrs.get('units')!r} are not an area x time "
                            "(e.g. 'm2 s')") from None
        self.psf, self._psf_by_model = _kernels(psf, PSFKernel, "psf")
        self.edisp, self._edisp_by_model = _kernels(edisp, EDispKernel, "edisp")
        self._check_axes()
        self.band = band
        self.mask_safe = mask_safe
        self.mask_fit = mask_fit
        self.name = name
        if point_method not in ("exact", "bilinear"):
            raise FitError(f"point_method {point_method!r}: use 'exact' or 'bilinear'")
        self.point_method = point_method
        self.models = list(models or [])
        self._arrays: DatasetArrays | None = None

    def _check_axes(self) -> None:
        """Exposure, kernels and counts must describe the same energy bins."""
        n_reco, n_exp = self.counts.shape[0], self.exposure.shape[0]
        if self.exposure.shape[1:] != self.counts.shape[1:]:
            raise GeometryError(f"exposure: shape {self.exposure.shape} differs from counts {self.counts.shape} "
                                "in its sky pixels")
        edisps = ([self.edisp] if self.edisp is not None else []) + list(self._edisp_by_model.values())
        if not edisps and (self.exposure.dims[0] == "energy_true" or n_exp != n_reco):
            raise GeometryError(f"exposure: {n_exp} {self.exposure.dims[0]} bins for {n_reco} counts bins needs an "
                                "energy-dispersion kernel (edisp=...)")
        for kernel in edisps:
            if kernel.data.shape != (n_exp, n_reco):
                raise GeometryError(f"edisp: kernel of shape {kernel.data.shape} for {n_exp} exposure bins and "
                                    f"{n_reco} counts bins")
        for kernel in ([self.psf] if self.psf is not None else []) + list(self._psf_by_model.values()):
            if kernel.data.shape[0] not in (1, n_exp):
                raise GeometryError(f"psf: {kernel.data.shape[0]} kernels for {n_exp} exposure energy bins")

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def from_maps(cls, maps: xr.Dataset, *, psf: PSFKernel | Mapping[str, PSFKernel] | None = None,
                  edisp: EDispKernel | Mapping[str, EDispKernel] | None = None, models: list | None = None,
                  mask_fit: xr.DataArray | None = None, name: str = "stacked",
                  point_method: Literal["exact", "bilinear"] = "exact") -> MapDataset:
        """From a Dataset with ``counts``, ``exposure`` and (optionally) ``background``, ``mask_safe``.

        With ``edisp``, the exposure is ``exposure_true`` (true energy) when the Dataset has it.
        Squashed images (`~xgamma.makers.squash_energy`) bring their per-pixel valid energy
        range (``safe_energy_min`` / ``safe_energy_max``).
        """
        from xgamma.makers.squash import BAND_VARIABLES

        missing = [v for v in ("counts", "exposure") if v not in maps]
        if missing:
            raise GeometryError(f"maps: missing variables {missing}; have {list(maps.data_vars)}")
        exposure = maps["exposure_true"] if edisp is not None and "exposure_true" in maps else maps["exposure"]
        band = tuple(maps[v] for v in BAND_VARIABLES) if all(v in maps for v in BAND_VARIABLES) else None
        return cls(maps["counts"], exposure, maps.get("background"), psf=psf, edisp=edisp, band=band,
                   mask_safe=maps.get("mask_safe"), mask_fit=mask_fit, models=models, name=name,
                   point_method=point_method)

    def to_image(self, name: str | None = None) -> MapDataset:
        """The dataset with counts and background summed over reconstructed energy.

        The exposure, PSF and migration kernels keep their energy bins (the kernels' columns are
        summed), so each source is predicted with its own spectrum, exposure and PSF per energy
        bin and then summed: an image fit free of any assumed weighting spectrum (Gammapy's
        ``MapDataset.to_image``).
        """
        if self.band is not None:
            raise FitError(f"dataset {self.name!r} is already a squashed image")

        def summed(da: xr.DataArray | None) -> xr.DataArray | None:
            if da is None:
                return None
            from xgamma.makers.squash import squash_energy

            return squash_energy(da)

        def kernel_image(kernel: EDispKernel | None) -> EDispKernel:
            if kernel is not None:
                return kernel.to_image()
            return EDispKernel.diagonal(self.geometry.energy_edges).to_image()

        mask_safe = self.mask_safe
        if isinstance(mask_safe, xr.DataArray) and "energy" in mask_safe.dims:
            mask_safe = mask_safe.any("energy")
        edisp = ({k: kernel_image(v) for k, v in self._edisp_by_model.items()} if self._edisp_by_model
                 else kernel_image(self.edisp))
        psf = self._psf_by_model or self.psf
        return MapDataset(summed(self.counts), self.exposure, summed(self.background), psf=psf, edisp=edisp,
                          mask_safe=mask_safe, mask_fit=self.mask_fit, models=self.models,
                          name=name or f"{self.name}-image", point_method=self.point_method)

    @property
    def geometry(self):
        """The :class:`~xgamma.geometry.SkyGeometry` of the maps."""
        from xgamma.maps import map_geometry

        return map_geometry(self.counts)

    @property
    def background_model(self) -> BackgroundModel | None:
        return next((m for m in self.models if isinstance(m, BackgroundModel)), None)

    @property
    def sky_models(self) -> tuple[SkyModel, ...]:
        """The sky models of `models` (a read-only view: add or remove models through ``models``)."""
        return _ModelsView(m for m in self.models if isinstance(m, SkyModel))

    # ------------------------------------------------------------------ numpy view
    def _mask(self) -> np.ndarray:
        mask = np.ones(self.counts.shape, dtype=bool)
        for label, m in (("mask_safe", self.mask_safe), ("mask_fit", self.mask_fit)):
            if m is None:
                continue
            values = np.asarray(m.values if isinstance(m, xr.DataArray) else m, dtype=bool)
            try:
                mask &= np.broadcast_to(values, mask.shape)
            except ValueError:
                raise GeometryError(f"{label}: shape {values.shape} does not broadcast to {mask.shape}") from None
        return mask

    @property
    def arrays(self) -> DatasetArrays:
        """Numpy arrays used by the statistic (computed and cached on first access).

        Raises
        ------
        FitError
            If exposure or background is NaN/inf inside the fit mask (the message names the map).
        """
        if self._arrays is None:
            geometry = self.geometry
            mask = self._mask()
            counts = np.asarray(self.counts.values, dtype=float)
            exposure = np.asarray(self.exposure.values, dtype=float) * self._exposure_factor
            background = None if self.background is None else np.asarray(self.background.values, dtype=float)
            for label, arr in (("counts", counts), ("exposure", exposure), ("background", background)):
                if arr is not None:
                    # The exposure may have its own (true) energy bins: any used pixel counts.
                    bad = ~np.isfinite(arr) & (mask if arr.shape == mask.shape else mask.any(axis=0))
                    if bad.any():
                        raise FitError(f"{label} map has {int(bad.sum())} NaN/inf pixels inside the fit mask "
                                       f"(dataset {self.name!r}); mask them with mask_safe/mask_fit")
            # Outside the mask, non-finite values only need to be harmless in the sums.
            exposure = np.nan_to_num(exposure, nan=0.0, posinf=0.0, neginf=0.0)
            counts = np.nan_to_num(counts)
            if background is not None:
                background = np.nan_to_num(background)
            self._arrays = DatasetArrays(
                counts=counts, exposure=exposure, background=background, mask=mask,
                energy_edges=geometry.energy_edges.to_value("TeV"),
                grid=PixelGrid.from_geometry(geometry),
                kernel=None if self.psf is None else self.psf.data,
                psf=self.psf,
                point_method=self.point_method,
                exposure_edges=self._exposure_edges(),
                edisp=None if self.edisp is None else self.edisp.data,
                band=self._band_values(),
                psf_by_model=dict(self._psf_by_model),
                edisp_by_model={k: v.data for k, v in self._edisp_by_model.items()},
            )
            self._check_sources()
        return self._arrays

    def _exposure_edges(self) -> np.ndarray | None:
        if self.exposure.dims[0] == "energy" and self.exposure.shape[0] == self.counts.shape[0]:
            return None
        from xgamma.maps import map_geometry

        return map_geometry(self.exposure).energy_edges.to_value("TeV")

    def _band_values(self) -> np.ndarray | None:
        if self.band is None:
            return None
        if self.counts.shape[0] != 1:
            raise GeometryError("band: per-pixel energy ranges are for squashed images (one energy bin)")
        values = np.array([np.asarray(b.values, dtype=float).reshape(self.counts.shape[1:]) for b in self.band])
        if not np.all(np.isfinite(values)) or np.any(values <= 0) or np.any(values[0] >= values[1]):
            raise GeometryError("band: per-pixel energy ranges must be finite with 0 < min < max")
        return values

    def _check_sources(self) -> None:
        """With per-source kernels, every sky model needs its own."""
        for label, kernels in (("psf", self._psf_by_model), ("edisp", self._edisp_by_model)):
            shared = self.psf if label == "psf" else self.edisp
            missing = [m.name for m in self.sky_models if m.name not in kernels]
            if kernels and shared is None and missing:
                raise FitError(f"{label}: no kernel for source(s) {missing} of dataset {self.name!r} "
                               f"(kernels for {sorted(kernels)})")

    def kernels_of(self, name: str) -> tuple[PSFKernel | None, EDispKernel | None]:
        """The PSF and migration kernels that predict sky model ``name`` (its own, else the shared ones)."""
        return self._psf_by_model.get(name, self.psf), self._edisp_by_model.get(name, self.edisp)

    def _wrap(self, data: np.ndarray, name: str, units: str = "") -> xr.DataArray:
        out = xr.DataArray(data, dims=self.counts.dims, coords=self.counts.coords, name=name)
        out.attrs = {"units": units}
        return out

    # ------------------------------------------------------------------ predictions
    def npred_background(self) -> xr.DataArray:
        """Background counts after the background model (zeros without a background map)."""
        return self._wrap(np.array(npred_background(self.arrays, self.background_model), dtype=float),
                          "npred_background")

    def npred_source(self, model: SkyModel | str) -> xr.DataArray:
        """Predicted counts of one sky model (by object or name) on the full map."""
        if isinstance(model, str):
            found = [m for m in self.sky_models if m.name == model]
            if not found:
                raise FitError(f"dataset {self.name!r} has no sky model {model!r}; "
                               f"known: {[m.name for m in self.sky_models]}")
            model = found[0]
        out = np.zeros(self.counts.shape)
        box, values = npred_source(self.arrays, model)
        if box is not None:
            out[:, box[0], box[1]] = values
        return self._wrap(out, f"npred_{model.name}")

    def npred_components(self) -> dict[str, xr.DataArray]:
        """``{"background": ..., <sky model name>: ...}`` predicted counts."""
        out = {"background": self.npred_background()}
        for m in self.sky_models:
            out[m.name] = self.npred_source(m)
        return out

    def npred(self) -> xr.DataArray:
        """Total predicted counts (background model + all sky models)."""
        total = sum((c.values for c in self.npred_components().values()), np.zeros(self.counts.shape))
        return self._wrap(total, "npred")

    # ------------------------------------------------------------------ statistic and residuals
    def stat_sum(self) -> float:
        """Cash statistic of the current model over the fit mask."""
        a = self.arrays
        return cash_sum(a.counts, self.npred().values, a.mask)

    def likelihood(self) -> Likelihood:
        """A picklable :class:`Likelihood` of the free parameters (on copies of the models)."""
        return Likelihood(self.arrays, [m.copy() for m in self.models])

    def residuals(self) -> xr.DataArray:
        """counts - npred (counts)."""
        return self._wrap(self.arrays.counts - self.npred().values, "residual")

    def residual_maps(self, *, method: Literal["cash", "diff/sqrt(model)"] = "cash") -> xr.Dataset:
        """``npred``, ``residual`` and ``residual_significance`` maps.

        ``method="cash"`` gives the signed Cash likelihood-ratio significance per pixel
        (`xgamma.fit.statistic.cash_significance`); ``"diff/sqrt(model)"`` gives (n - mu) / sqrt(mu).
        Both are NaN where npred is not positive (no prediction: the significance is undefined).
        """
        npred = self.npred()
        counts = self.arrays.counts
        if method == "cash":
            sig = cash_significance(counts, npred.values)
        elif method == "diff/sqrt(model)":
            with np.errstate(divide="ignore", invalid="ignore"):
                sig = np.where(npred.values > 0, (counts - npred.values) / np.sqrt(npred.values), np.nan)
        else:
            raise FitError(f"unknown residual method {method!r}; use 'cash' or 'diff/sqrt(model)'")
        return xr.Dataset({
            "npred": npred,
            "residual": self._wrap(counts - npred.values, "residual"),
            "residual_significance": self._wrap(sig, "residual_significance"),
        })

    def __repr__(self) -> str:
        return (f"MapDataset(name={self.name!r}, shape={self.counts.shape}, psf={self.psf is not None}, "
                f"models={[m.name for m in self.models]})")


class _ModelsView(tuple):
    """A read-only selection of `MapDataset.models`: changing it would change nothing, so it refuses."""

    def _refuse(self, *args, **kwargs):
        raise FitError("MapDataset.sky_models is a read-only view of MapDataset.models: "
                       "use dataset.models.append(model) (or .remove, .insert) to change the models fitted")

    append = extend = insert = remove = pop = clear = _refuse
