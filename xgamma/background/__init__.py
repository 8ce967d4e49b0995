"""Background estimation: exclusion masks, offset cuts, ring and adaptive ring backgrounds.

Modules, one job each: ``exclusion`` (masks from regions or a significance threshold),
``offset`` (field-of-view offset cuts), ``inputs`` (checked inputs of the ring-type estimators),
``ring_blocks`` (the ring's numpy block functions and its reference equations), ``ring`` and
``adaptive_ring`` (the lazy functions), ``stacking`` (per-run results stacked), ``estimator``
(the estimator classes registered as plugins).
"""

from __future__ import annotations

from xgamma.background.adaptive_ring import adaptive_ring_background
from xgamma.background.estimator import AdaptiveRingBackground, RingBackground
from xgamma.background.exclusion import make_exclusion_mask, parse_regions, threshold_exclusion_mask
from xgamma.background.offset import offset_mask
from xgamma.background.ring import ring_background
from xgamma.background.stacking import stack_ring_maps
from xgamma.convolution import convolve_image, ring_kernel, tophat_kernel

__all__ = [
    "AdaptiveRingBackground",
    "RingBackground",
    "adaptive_ring_background",
    "convolve_image",
    "make_exclusion_mask",
    "offset_mask",
    "parse_regions",
    "ring_background",
    "ring_kernel",
    "stack_ring_maps",
    "threshold_exclusion_mask",
    "tophat_kernel",
]
