"""Sky model: a spatial model times a spectral model, with a name."""

from __future__ import annotations

from typing import Any

import astropy.units as u

from xgamma.exceptions import ModelError
from xgamma.models.parameter import Parameter
from xgamma.models.spatial import SpatialModel
from xgamma.models.spectral import SpectralModel

__all__ = ["SkyModel"]


class SkyModel:
    """Source model: ``flux(E, position) = spectral(E) x spatial(position)``.

    Parameters
    ----------
    spectral : SpectralModel
        dN/dE (``TeV-1 cm-2 s-1``).
    spatial : SpatialModel
        Normalised surface brightness (``sr-1``).
    name : str
        Model name, used to label parameters ``"<name>.<parameter>"``.
    """

    def __init__(self, spectral: SpectralModel, spatial: SpatialModel, *, name: str = "source") -> None:
        if not isinstance(spectral, SpectralModel):
            raise ModelError(f"sky model {name!r}: spectral must be a SpectralModel, got {type(spectral).__name__}")
        if not isinstance(spatial, SpatialModel):
            raise ModelError(f"sky model {name!r}: spatial must be a SpatialModel, got {type(spatial).__name__}")
        self.spectral = spectral
        self.spatial = spatial
        self.name = str(name)
        names = [p.name for p in self.parameters]
        if len(set(names)) != len(names):
            raise ModelError(f"sky model {name!r}: spatial and spectral parameter names clash: {names}")

    @property
    def parameters(self) -> list[Parameter]:
        """Spatial then spectral parameters."""
        return self.spatial.parameters + self.spectral.parameters

    def parameter(self, name: str) -> Parameter:
        """The parameter called ``name`` (ModelError listing the names otherwise)."""
        for p in self.parameters:
            if p.name == name:
                return p
        raise ModelError(f"sky model {self.name!r} has no parameter {name!r}; "
                         f"known: {[p.name for p in self.parameters]}")

    def integral_flux(self, emin: u.Quantity, emax: u.Quantity) -> u.Quantity:
        """Integral flux (``cm-2 s-1``) of the spectral model between energies."""
        return self.spectral.integral(emin, emax).to("cm-2 s-1")

    def to_dict(self) -> dict[str, Any]:
        """Gammapy-style mapping (``type: SkyModel``)."""
        return {"name": self.name, "type": "SkyModel", "spectral": self.spectral.to_dict(),
                "spatial": self.spatial.to_dict()}

    def copy(self) -> SkyModel:
        """Deep copy."""
        return SkyModel(self.spectral.copy(), self.spatial.copy(), name=self.name)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SkyModel):
            return NotImplemented
        return (self.name, self.spectral, self.spatial) == (other.name, other.spectral, other.spatial)

    __hash__ = None

    def __repr__(self) -> str:
        return f"SkyModel(name={self.name!r}, spatial={self.spatial!r}, spectral={self.spectral!r})"
