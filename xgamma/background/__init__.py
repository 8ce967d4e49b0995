"""Background estimation: exclusion masks, ring and adaptive ring backgrounds, their kernels."""

from __future__ import annotations

from xgamma.background.adaptive_ring import AdaptiveRingBackground, adaptive_ring_background
from xgamma.background.exclusion import (
    iterate_exclusion_mask,
    make_exclusion_mask,
    parse_regions,
    threshold_exclusion_mask,
)
from xgamma.background.offset import offset_mask
from xgamma.background.ring import RingBackground, ring_background, stack_ring_maps
from xgamma.convolution import convolve_image, ring_kernel, tophat_kernel

__all__ = [
    "AdaptiveRingBackground",
    "RingBackground",
    "adaptive_ring_background",
    "convolve_image",
    "iterate_exclusion_mask",
    "make_exclusion_mask",
    "offset_mask",
    "parse_regions",
    "ring_background",
    "ring_kernel",
    "stack_ring_maps",
    "threshold_exclusion_mask",
    "tophat_kernel",
]
