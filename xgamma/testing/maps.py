"""Compare sky maps in tests: same layout, sky geometry and units, values within tolerances."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["assert_maps_allclose"]


def assert_maps_allclose(actual: Any, expected: Any, *, rtol: float = 1e-7, atol: float = 0.0) -> None:
    """Assert that two maps (DataArrays) or groups of maps (Datasets) are the same maps.

    Checks, with messages naming the map at fault: the variables of a Dataset, each map's dims
    and shape, its sky geometry (WCS and energy edges, `SkyGeometry.__eq__`), its units (as
    astropy units: ``"m2 s"`` equals ``"s m2"``) and its values with
    `numpy.testing.assert_allclose` (NaNs in the same places). Lazy maps are computed.

    Parameters
    ----------
    actual, expected : `xarray.DataArray` or `xarray.Dataset`
        The maps.
    rtol, atol : float
        Tolerances of the values, as in `numpy.testing.assert_allclose`. Default: 1e-7 and 0.

    Raises
    ------
    AssertionError
        On the first difference.
    """
    import astropy.units as u
    import xarray as xr

    from xgamma.maps import map_geometry

    __tracebackhide__ = True
    if isinstance(expected, xr.Dataset):
        assert isinstance(actual, xr.Dataset), f"expected a Dataset of maps, got {type(actual).__name__}"
        assert set(actual.data_vars) == set(expected.data_vars), (
            f"map variables differ: {sorted(actual.data_vars)} != {sorted(expected.data_vars)}")
        for name in expected.data_vars:
            assert_maps_allclose(actual[name], expected[name], rtol=rtol, atol=atol)
        return
    name = expected.name
    assert isinstance(actual, xr.DataArray), f"map {name!r}: expected a DataArray, got {type(actual).__name__}"
    assert actual.dims == expected.dims, f"map {name!r}: dims {actual.dims} != {expected.dims}"
    assert actual.shape == expected.shape, f"map {name!r}: shape {actual.shape} != {expected.shape}"
    assert map_geometry(actual) == map_geometry(expected), (
        f"map {name!r}: sky geometries differ: {map_geometry(actual)!r} != {map_geometry(expected)!r}")
    units = [u.Unit(m.attrs.get("units", "")) for m in (actual, expected)]
    assert units[0] == units[1], f"map {name!r}: units {units[0]} != {units[1]}"
    np.testing.assert_allclose(np.asarray(actual.values), np.asarray(expected.values), rtol=rtol, atol=atol,
                               equal_nan=True, err_msg=f"map {name!r}")
