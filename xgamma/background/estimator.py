"""The background estimators (plugin entries ``ring`` and ``adaptive_ring``): Dataset in, Dataset out.

Thin: each holds its parameters and calls its lazy function (`~xgamma.background.ring_background`,
`~xgamma.background.adaptive_ring_background`) on a Dataset's ``counts`` and ``background``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import xarray as xr

from xgamma.background.adaptive_ring import adaptive_ring_background
from xgamma.background.inputs import OBS_DIM, pointings_from_dataset
from xgamma.background.ring import ring_background
from xgamma.background.stacking import stack_ring_maps
from xgamma.exceptions import EstimatorError

__all__ = ["RingBackground", "AdaptiveRingBackground"]


class _BackgroundEstimator:
    """`run` of the ring-type estimators; subclasses give `_estimate`."""

    name: ClassVar[str]

    def _estimate(self, counts: xr.DataArray, background: xr.DataArray, pointing: Any) -> xr.Dataset:
        raise NotImplementedError

    def run(self, dataset: xr.Dataset, *, pointing: Any = None) -> xr.Dataset:
        """Add ``off``, ``acceptance_off``, ``alpha`` and ``background`` (= alpha x off) to ``dataset``.

        The input ``background`` (model) becomes ``acceptance``. Other variables are kept. With an
        ``obs_id`` dim, each observation gets its own ring (and offset cut, with pointings from
        the ``pointing_ra`` / ``pointing_dec`` coords on ``obs_id`` or the ``pointing`` argument)
        and the results are stacked (`~xgamma.background.stack_ring_maps`).
        """
        missing = {"counts", "background"} - set(dataset.data_vars)
        if missing:
            raise EstimatorError(f"{self.name} background needs dataset variables {sorted(missing)}")
        if pointing is None:
            pointing = pointings_from_dataset(dataset)
        ring = self._estimate(dataset["counts"], dataset["background"], pointing)
        keep = dataset.drop_vars(["counts", "background"])
        if OBS_DIM in dataset.dims:
            keep = keep.drop_dims(OBS_DIM, errors="ignore")
        out = keep.merge(ring, compat="override", join="override")
        out.attrs = {**dataset.attrs, **ring.attrs}
        return out


@dataclass(frozen=True, eq=False)
class RingBackground(_BackgroundEstimator):
    """Ring background estimator (``name = "ring"``); see `~xgamma.background.ring_background`.

    Parameters
    ----------
    r_in : str or `~astropy.units.Quantity`
        Inner ring radius (angle). Default is "0.3 deg".
    width : str or `~astropy.units.Quantity`
        Ring width (angle). Default is "0.3 deg".
    exclusion : `xarray.DataArray`, optional
        Exclusion mask (True = usable). Default: nothing excluded.
    offset_max : str or `~astropy.units.Quantity`, optional
        Per-observation offset cut applied before the ring sums.

    Notes
    -----
    `run` takes a Dataset with ``counts`` and ``background`` (the background model, used as the
    acceptance). With an ``obs_id`` dim the runs are stacked by ``ring_background(stack=True)``,
    which never makes per-run maps.
    """

    name: ClassVar[str] = "ring"

    r_in: Any = "0.3 deg"
    width: Any = "0.3 deg"
    exclusion: xr.DataArray | None = None
    offset_max: Any = None

    def _estimate(self, counts: xr.DataArray, background: xr.DataArray, pointing: Any) -> xr.Dataset:
        return ring_background(counts, background, r_in=self.r_in, width=self.width, exclusion=self.exclusion,
                               offset_max=self.offset_max, pointing=pointing, stack=OBS_DIM in counts.dims)


@dataclass(frozen=True, eq=False)
class AdaptiveRingBackground(_BackgroundEstimator):
    """Adaptive ring background estimator (``name = "adaptive_ring"``); see `adaptive_ring_background`."""

    name: ClassVar[str] = "adaptive_ring"

    r_in: Any = "0.7 deg"
    width: Any = "0.44 deg"
    r_out_max: Any = "1.7 deg"
    stepsize: Any = "0.02 deg"
    threshold_alpha: float = 0.1
    theta: Any = "0.22 deg"
    min_area_fraction: float = 0.0
    method: Literal["fixed_width", "fixed_r_in"] = "fixed_width"
    exclusion: xr.DataArray | None = None
    offset_max: Any = None

    def _estimate(self, counts: xr.DataArray, background: xr.DataArray, pointing: Any) -> xr.Dataset:
        ring = adaptive_ring_background(
            counts, background,
            r_in=self.r_in, width=self.width, r_out_max=self.r_out_max, stepsize=self.stepsize,
            threshold_alpha=self.threshold_alpha, theta=self.theta,
            min_area_fraction=self.min_area_fraction, method=self.method,
            exclusion=self.exclusion, offset_max=self.offset_max, pointing=pointing,
        )
        return stack_ring_maps(ring.drop_vars("ring_index")) if OBS_DIM in ring.dims else ring
