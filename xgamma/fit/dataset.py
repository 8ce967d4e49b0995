"""Map dataset: counts, exposure, background, PSF kernel and masks, with models attached.

Building a :class:`MapDataset` computes nothing; the first call that needs values (``npred``,
``stat_sum``, a fit) loads the maps into numpy once and caches them (the fit evaluates the model
hundreds of times on the same arrays).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import astropy.units as u
import numpy as np
import xarray as xr

from xgamma.exceptions import FitError, GeometryError, UnitError
from xgamma.fit.npred import DatasetArrays, npred_background, npred_source
from xgamma.fit.statistic import Likelihood, cash_significance, cash_sum
from xgamma.models.background_model import BackgroundModel
from xgamma.models.sky_model import SkyModel
from xgamma.models.spatial import PixelGrid

if TYPE_CHECKING:
    from xgamma.fit.psf_kernel import PSFKernel

__all__ = ["MapDataset"]


def _as_cube(da: xr.DataArray, name: str) -> xr.DataArray:
    if not isinstance(da, xr.DataArray):
        raise GeometryError(f"{name}: expected an xarray.DataArray map, got {type(da).__name__}")
    if da.dims == ("lat", "lon"):
        raise GeometryError(f"{name}: map has no 'energy' dim; images keep a length-1 energy dim")
    if da.dims != ("energy", "lat", "lon"):
        raise GeometryError(f"{name}: dims {da.dims} are not ('energy', 'lat', 'lon')")
    return da


class MapDataset:
    """Counts, exposure, background, PSF kernel and masks of one (stacked) analysis.

    Parameters
    ----------
    counts : xarray.DataArray
        Counts, dims (energy, lat, lon) (an image has a length-1 energy dim).
    exposure : xarray.DataArray
        Exposure (``attrs["units"]`` an area x time, e.g. ``"m2 s"``), same shape; for an image,
        the spectrum-weighted exposure of the band.
    background : xarray.DataArray, optional
        Background counts, same shape.
    psf : PSFKernel, optional
        Kernel(s): one per energy bin, or one shared by all bins.
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
        psf: PSFKernel | None = None,
        mask_safe: xr.DataArray | None = None,
        mask_fit: xr.DataArray | None = None,
        models: list | None = None,
        name: str = "stacked",
        point_method: Literal["exact", "bilinear"] = "exact",
    ) -> None:
        self.counts = _as_cube(counts, "counts")
        self.exposure = _as_cube(exposure, "exposure")
        self.background = None if background is None else _as_cube(background, "background")
        for label, da in (("exposure", self.exposure), ("background", self.background)):
            if da is not None and da.shape != self.counts.shape:
                raise GeometryError(f"{label}: shape {da.shape} differs from counts {self.counts.shape}")
        try:
            self._exposure_factor = float(u.Unit(self.exposure.attrs.get("units", "")).to("cm2 s"))
        except (u.UnitConversionError, ValueError):
            raise UnitError(f"exposure: units {self.exposure.attrs.get('units')!r} are not an area x time "
                            "(e.g. 'm2 s')") from None
        self.psf = psf
        if psf is not None and psf.data.shape[0] not in (1, self.counts.shape[0]):
            raise GeometryError(f"psf: {psf.data.shape[0]} kernels for {self.counts.shape[0]} energy bins")
        self.mask_safe = mask_safe
        self.mask_fit = mask_fit
        self.name = name
        if point_method not in ("exact", "bilinear"):
            raise FitError(f"point_method {point_method!r}: use 'exact' or 'bilinear'")
        self.point_method = point_method
        self.models = list(models or [])
        self._arrays: DatasetArrays | None = None

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def from_maps(cls, maps: xr.Dataset, *, psf: PSFKernel | None = None, models: list | None = None,
                  mask_fit: xr.DataArray | None = None, name: str = "stacked",
                  point_method: Literal["exact", "bilinear"] = "exact") -> MapDataset:
        """From a Dataset with ``counts``, ``exposure`` and (optionally) ``background``, ``mask_safe``."""
        missing = [v for v in ("counts", "exposure") if v not in maps]
        if missing:
            raise GeometryError(f"maps: missing variables {missing}; have {list(maps.data_vars)}")
        return cls(maps["counts"], maps["exposure"], maps.get("background"), psf=psf,
                   mask_safe=maps.get("mask_safe"), mask_fit=mask_fit, models=models, name=name,
                   point_method=point_method)

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
                    bad = ~np.isfinite(arr) & mask
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
            )
        return self._arrays

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
