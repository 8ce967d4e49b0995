"""Background model: the dataset's background map x norm x (E / reference)^-tilt."""

from __future__ import annotations

from typing import Any

import numpy as np

from xgamma.models.core import Model
from xgamma.models.parameter import ParameterSpec, ParamInput
from xgamma.models.spectral import PowerLawNorm

__all__ = ["BackgroundModel"]


class BackgroundModel(Model):
    """Scale of a dataset's background map (Gammapy's ``FoVBackgroundModel``).

    Parameters
    ----------
    norm : float
        Overall normalisation (dimensionless, default 1, free).
    tilt : float
        Spectral tilt (dimensionless, default 0, frozen).
    reference : Quantity
        Reference energy of the tilt (default 1 TeV, frozen).
    name : str
        Model name (default ``"background"``); parameters are labelled ``"<name>.norm"``.
    datasets_names : list of str, optional
        Datasets this model applies to (written to YAML for Gammapy).
    """

    tag = "background"
    gammapy_tags = ("FoVBackgroundModel",)
    tilt = ParameterSpec(0.0, "", frozen=True)
    norm = ParameterSpec(1.0, "")
    reference = ParameterSpec(1.0, "TeV", frozen=True)

    def __init__(self, *, norm: ParamInput = None, tilt: ParamInput = None, reference: ParamInput = None,
                 name: str = "background", datasets_names: list[str] | None = None) -> None:
        self.name = str(name)
        self.datasets_names = list(datasets_names) if datasets_names else None
        super().__init__(tilt=tilt, norm=norm, reference=reference)

    evaluate = staticmethod(PowerLawNorm.evaluate)

    def scale(self, energy: np.ndarray) -> np.ndarray:
        """Multiplicative factor norm (E / reference)^-tilt at ``energy`` (TeV floats)."""
        return self.evaluate(energy, *self.values)

    def _extra_key(self) -> tuple:
        return (self.name, self.datasets_names)

    def to_dict(self) -> dict[str, Any]:
        """Gammapy-style mapping (``type: FoVBackgroundModel`` with a ``PowerLawNorm`` spectrum)."""
        out: dict[str, Any] = {"name": self.name, "type": "FoVBackgroundModel"}
        if self.datasets_names:
            out["datasets_names"] = list(self.datasets_names)
        out["spectral"] = {"type": "PowerLawNormSpectralModel",
                           "parameters": [p.to_dict() for p in self.parameters]}
        return out

    def __repr__(self) -> str:
        return f"BackgroundModel(name={self.name!r}, " + super().__repr__().split("(", 1)[1]
