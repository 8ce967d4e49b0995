"""Sky geometry (WCS pixel grid + energy axis)."""

from __future__ import annotations

from xgamma.geometry.energy import ENERGY_DIMS, energy_centers, energy_edges
from xgamma.geometry.sky import FRAMES, PROJECTIONS, SkyGeometry, wcs_frame, wrap_longitude
from xgamma.geometry.spherical import angular_distance, position_angle

__all__ = ["ENERGY_DIMS", "FRAMES", "PROJECTIONS", "SkyGeometry", "angular_distance", "energy_centers",
           "energy_edges", "position_angle", "wcs_frame", "wrap_longitude"]
