"""Groups of a map's energy bins between requested edges (TS maps, flux points, light curves)."""

from __future__ import annotations

from typing import Any

import numpy as np

from xgamma.exceptions import EstimatorError

__all__ = ["energy_groups"]


def energy_groups(edges: np.ndarray, energy_edges: Any, *, snap: bool = False) -> list[slice]:
    """Slices of the bins between consecutive ``energy_edges`` (all bins when None).

    Parameters
    ----------
    edges : numpy.ndarray
        The map's bin edges (TeV).
    energy_edges : `~astropy.units.Quantity`, str list or None
        Requested group edges (energies).
    snap : bool
        Move each requested edge to the nearest map edge (in log energy), as Gammapy's flux
        points do; otherwise they must be map edges (to 1e-6). Default is False.

    Returns
    -------
    groups : list of slice
        One per group, non-empty, in increasing energy.
    """
    if energy_edges is None:
        return [slice(0, edges.size - 1)]
    from xgamma.units import parse_quantity

    wanted = np.atleast_1d(parse_quantity(energy_edges, "TeV", name="energy_edges").to_value("TeV"))
    if wanted.size < 2 or np.any(np.diff(wanted) <= 0) or np.any(wanted <= 0):
        raise EstimatorError(f"energy_edges {wanted.tolist()} TeV must be >= 2 increasing positive energies")
    index = [int(np.argmin(np.abs(np.log(edges / e)))) for e in wanted]
    if not snap and not np.allclose(edges[index], wanted, rtol=1e-6):
        raise EstimatorError(f"energy_edges {wanted.tolist()} TeV must be edges of the map's energy bins "
                             f"{edges.tolist()} TeV")
    if np.any(np.diff(index) <= 0):
        raise EstimatorError(f"energy_edges {wanted.tolist()} TeV: two edges fall on the same map edge of "
                             f"{edges.tolist()} TeV (a group would be empty)")
    return [slice(a, b) for a, b in zip(index[:-1], index[1:])]
