"""What ``xgamma run`` prints: the plan of a dry run, and the products, fit table and peak of a run."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xgamma.workflow import Analysis

__all__ = ["format_plan", "format_report"]


def format_plan(analysis: Analysis, output: str | os.PathLike) -> str:
    """The checked plan of a dry run: observations, map size, stages, where products would go."""
    from dask.utils import format_bytes

    from xgamma.workflow.products import PRODUCT_NAMES

    geometry = analysis.geometry
    n_lat, n_lon = geometry.shape
    voxels = n_lat * n_lon * max(geometry.nbins, 1)
    ids = [int(o.obs_id) for o in analysis.observations]
    shown = ", ".join(str(i) for i in ids[:20]) + (f", ... ({len(ids)} in all)" if len(ids) > 20 else "")
    lines = [
        "xgamma run --dry-run: the configuration, data files, models and regions are valid",
        f"  observations: {len(ids)} ({shown})",
        f"  map: {n_lon} x {n_lat} pixels of {geometry.pixel_scale:g} deg ({geometry.projection}, "
        f"{geometry.frame}), {geometry.nbins} energy bins; cube {format_bytes(voxels * 24)} in memory",
        f"  stages: {', '.join(analysis.stages)}",
        f"  products would go to {output} (replacing any of {', '.join(PRODUCT_NAMES)} found there)",
    ]
    return "\n".join(lines)


def format_report(analysis: Analysis) -> str:
    """Products written, then the fit table and the peak significance when those stages ran."""
    lines = [f"{name:>17}: {path}" for name, path in analysis.products.items()]
    if analysis.fit_result is not None:
        # A failed fit shows success=False here; the run also warned on stderr (and FIT_OK = F).
        lines += ["", str(analysis.fit_result)]
    significance = analysis.summary.get("significance")
    if significance:
        position = significance.get("max_position") or {}
        distribution = significance.get("off_distribution") or {}
        lines += ["", f"peak significance {significance.get('max_significance', float('nan')):.2f} sigma at "
                      f"({position.get('lon', float('nan')):.4f}, {position.get('lat', float('nan')):.4f}) deg "
                      f"{position.get('frame', '')}",
                  f"off-pixel significance distribution: mean {distribution.get('mean', float('nan')):.3f}, "
                  f"width {distribution.get('std', float('nan')):.3f} ({distribution.get('n_pixels', 0)} pixels)"]
    return "\n".join(lines)
