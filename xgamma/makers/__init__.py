"""Map makers: lazy counts / exposure / background cubes and energy squashing."""

from __future__ import annotations

from xgamma.makers.maps import MAP_VARIABLES, MapProducts, make_map_products, make_maps, make_observation_maps
from xgamma.makers.squash import spectral_weights, squash_energy

__all__ = ["MAP_VARIABLES", "MapProducts", "make_map_products", "make_maps", "make_observation_maps", "spectral_weights", "squash_energy"]
