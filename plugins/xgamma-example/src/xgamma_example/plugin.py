"""Hook implementations of the example plugin (the module named by the entry point).

Keep this module cheap to import: xgamma imports it for ``xgamma plugins`` and on the first
registry look-up. The components are given as ``"module:Class"`` references.
"""

from __future__ import annotations

from collections.abc import Iterator

from xgamma.plugin import (
    BackgroundEstimatorEntry,
    SpatialModelEntry,
    SpectralModelEntry,
    hookimpl,
)

__all__ = ["xgamma_background_estimators", "xgamma_spatial_models", "xgamma_spectral_models"]


@hookimpl
def xgamma_spectral_models() -> Iterator[SpectralModelEntry]:
    yield SpectralModelEntry(
        name="sbpl",
        cls="xgamma_example.spectral:SmoothBrokenPowerLaw",
        aliases=("SmoothBrokenPowerLawSpectralModel", "SmoothBrokenPowerLaw"),
    )


@hookimpl
def xgamma_spatial_models() -> Iterator[SpatialModelEntry]:
    yield SpatialModelEntry(
        name="elliptical_gaussian",
        cls="xgamma_example.spatial:EllipticalGaussian",
        aliases=("egauss",),
    )


@hookimpl
def xgamma_background_estimators() -> Iterator[BackgroundEstimatorEntry]:
    yield BackgroundEstimatorEntry(name="fov", cls="xgamma_example.background:FoVBackground")
