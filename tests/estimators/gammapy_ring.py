"""Gammapy 2.1's ring-background stacking, run by run, for the estimator cross-checks.

Both tools then start from the same per-run arrays (Gammapy's makers), so a cross-check
compares the ring and the estimators, not map making.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class GammapyRingStack:
    """What `stack_ring_datasets` returns: the stacked ON-OFF dataset and the per-run inputs."""

    stacked: Any
    arrays: dict[str, list] = field(default_factory=dict)  # map name -> one numpy array per run
    pointings: list = field(default_factory=list)  # ICRS pointing of each run (SkyCoord)


def stack_ring_datasets(observations, geom, maker, safe, ring, *, true_axis=None) -> GammapyRingStack:
    """Per run: ``maker``, the safe mask, ``to_image``, the ring; stacked into one ON-OFF dataset.

    The first run's dataset is masked before the others are stacked onto it, so that every
    run's off counts are cut alike (Gammapy's ``stack()`` masks only the datasets added to the
    first one). ``true_axis`` gives the datasets an ``energy_true`` axis (needed for exposure).
    """
    from gammapy.datasets import MapDataset

    result = GammapyRingStack(stacked=None, arrays={name: [] for name in maker.selection})
    for obs in observations:
        kwargs = {} if true_axis is None else {"energy_axis_true": true_axis}
        dataset = maker.run(MapDataset.create(geom, name=str(obs.obs_id), **kwargs), obs)
        for name in maker.selection:
            result.arrays[name].append(dataset.exposure.quantity.to_value("cm2 s") if name == "exposure"
                                       else getattr(dataset, name).data.astype(float))
        result.pointings.append(obs.get_pointing_icrs(obs.tmid))
        on_off = ring.run(safe.run(dataset, obs).to_image())
        if result.stacked is None:
            result.stacked = on_off.to_masked(name="stacked")
        else:
            result.stacked.stack(on_off)
    return result
