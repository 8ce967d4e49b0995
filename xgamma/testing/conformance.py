"""Public conformance suite: checks any spectral model, spatial model or background estimator.

Call these from a plugin's tests (``plugins/xgamma-example/tests``) or parametrize them over the
registry. Each raises ``AssertionError`` with a message saying what failed. Models must be
registered (installed plugin) because the round trip goes through the model-file readers,
which resolve ``type:`` by name like a user's YAML file does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xgamma.testing.dask import raise_if_dask_computes

__all__ = ["check_background_estimator", "check_spatial_model", "check_spectral_model"]


def _instance(model_or_cls: Any, **defaults: Any) -> Any:
    return model_or_cls(**defaults) if isinstance(model_or_cls, type) else model_or_cls


def _perturbed(model: Any) -> Any:
    """A copy with every free parameter changed slightly, so a round trip cannot pass on defaults."""
    new = model.copy()
    for p in new.parameters:
        if not p.frozen:
            value = p.value * 1.05 if p.value != 0 else 0.01
            if not (np.isnan(p.max) or value <= p.max) or not (np.isnan(p.min) or value >= p.min):
                value = p.value
            p.value = value
    return new


def _check_round_trip(model: Any, from_dict: Any) -> None:
    import yaml

    data = model.to_dict()
    assert isinstance(data, dict) and "type" in data, f"to_dict() must give a mapping with 'type': {data!r}"
    again = from_dict(data)
    assert type(again) is type(model), f"from_dict(to_dict()) gave {type(again).__name__}"
    assert again == model, f"dict round trip changed the model:\n{model!r}\n{again!r}"
    # Through YAML text, as a model file does (NaN bounds and units must survive).
    text = yaml.safe_dump(data, sort_keys=False)
    again = from_dict(yaml.safe_load(text))
    assert again == model, f"YAML round trip changed the model:\n{model!r}\n{again!r}"
    assert repr(again) == repr(model)


def check_spectral_model(model_or_cls: Any, *, lazy: bool = True) -> None:
    """Check a spectral model class (built with defaults) or instance.

    Checks: ``__call__`` keeps the shape of scalar, 1-D and 2-D energies and returns
    ``flux_unit``; ``evaluate`` on an array equals element-wise calls; ``integral`` agrees with
    ``scipy.integrate.quad`` of dN/dE to 1e-6 relative and is additive over adjacent bins;
    the dict and YAML round trips (through :func:`xgamma.models.io.spectral_model_from_dict`)
    give an equal model; with ``lazy``, ``evaluate`` on a dask array computes nothing.
    """
    import astropy.units as u
    from scipy.integrate import quad

    from xgamma.models.io import spectral_model_from_dict

    model = _instance(model_or_cls)
    name = type(model).__name__
    unit = u.Unit(model.flux_unit)
    for energy in (1.0 * u.TeV, [0.3, 1, 3] * u.TeV, np.geomspace(0.1, 100, 12).reshape(3, 4) * u.TeV):
        value = model(energy)
        assert isinstance(value, u.Quantity) and value.unit.is_equivalent(unit), (
            f"{name}(energy) must return a Quantity in {unit}, got {value!r}")
        assert value.shape == np.shape(energy), f"{name}: shape {value.shape} != energy shape {np.shape(energy)}"
        assert np.all(np.isfinite(value.value)), f"{name}: non-finite dN/dE at {energy}"
    # The same value in other energy units.
    assert u.allclose(model(1 * u.TeV), model(1e9 * u.keV), rtol=1e-12), f"{name}: energy units ignored"
    energies = np.geomspace(0.1, 100.0, 7)
    vector = model.evaluate(energies, *model.values)
    scalar = [model.evaluate(e, *model.values) for e in energies]
    np.testing.assert_allclose(vector, scalar, rtol=1e-12, err_msg=f"{name}.evaluate is not vectorised")

    edges = np.geomspace(0.1, 100.0, 7) * u.TeV
    integral = model.integral(edges[:-1], edges[1:])
    assert integral.unit.is_equivalent(unit * u.TeV), f"{name}.integral unit {integral.unit}"
    expected = [quad(lambda e: model.evaluate(e, *model.values), lo, hi, epsrel=1e-10)[0]
                for lo, hi in zip(edges.value[:-1], edges.value[1:])]
    # quad is converged to 1e-10; 1e-6 leaves room for closed forms and Gauss-Legendre rules.
    np.testing.assert_allclose(integral.to_value(unit * u.TeV), expected, rtol=1e-6,
                               err_msg=f"{name}.integral differs from quadrature")
    whole = model.integral(edges[0], edges[-1]).to_value(unit * u.TeV)
    np.testing.assert_allclose(whole, integral.to_value(unit * u.TeV).sum(), rtol=1e-6,
                               err_msg=f"{name}.integral is not additive over bins")

    _check_round_trip(_perturbed(model), spectral_model_from_dict)

    if lazy:
        import dask.array as da

        energy = da.from_array(np.geomspace(0.1, 100.0, 8), chunks=4)
        try:
            with raise_if_dask_computes():
                result = model.evaluate(energy, *model.values)
        except RuntimeError as exc:
            raise AssertionError(f"{name}.evaluate computes its dask input: {exc}") from None
        assert isinstance(result, da.Array), f"{name}.evaluate(dask array) returned {type(result).__name__}"
        expected = model.evaluate(np.geomspace(0.1, 100.0, 8), *model.values)
        np.testing.assert_allclose(result.compute(scheduler="sync"), expected, rtol=1e-12)


def _test_geometry(center: tuple[float, float], radius: float) -> Any:
    import astropy.units as u

    from xgamma.geometry import SkyGeometry

    # Pixels of ~1/10 of the model size, map ~4x wider than its evaluation radius.
    binsz = float(np.clip(radius / 25.0, 0.002, 0.25))
    width = float(min(max(4.0 * radius, 20 * binsz), 40.0))
    return SkyGeometry.create(center, width=width * u.deg, binsz=binsz * u.deg, frame="galactic")


def check_spatial_model(model_or_cls: Any) -> None:
    """Check a spatial model class (built at (l, b) = (10, 20) deg) or instance.

    Checks: ``integrate_geom`` returns a finite, non-negative (n_lat, n_lon) array of flux
    fractions summing to 1 (to 1e-3) on a map containing the model; the default sub-pixel
    sampling agrees with a 16 x 16 midpoint quadrature per pixel (< 1 % of the flux misplaced);
    the flux centroid is at (lon_0, lat_0) to 0.1 pixel (point-symmetric models); the dict
    and YAML round trips (through :func:`xgamma.models.io.spatial_model_from_dict`) give an
    equal model. A class is checked twice: defined in galactic and in ICRS coordinates (at the
    same sky position), both evaluated on a galactic map.
    """
    if isinstance(model_or_cls, type):
        from astropy.coordinates import SkyCoord

        icrs = SkyCoord(10.0, 20.0, unit="deg", frame="galactic").icrs
        _check_spatial(model_or_cls(lon_0="10 deg", lat_0="20 deg", frame="galactic"))
        _check_spatial(model_or_cls(lon_0=f"{icrs.ra.deg} deg", lat_0=f"{icrs.dec.deg} deg", frame="icrs"))
    else:
        _check_spatial(model_or_cls)


def _check_spatial(model: Any) -> None:
    from xgamma.models.io import spatial_model_from_dict

    name = f"{type(model).__name__}(frame={model.frame!r})"
    radius = max(float(model.evaluation_radius()), 0.1)
    geometry = _test_geometry(model.position_in("galactic"), radius)
    with raise_if_dask_computes():  # evaluation is numpy on a pixel box: no dask work at all
        fraction = np.asarray(model.integrate_geom(geometry))
    assert fraction.shape == geometry.shape, f"{name}.integrate_geom shape {fraction.shape} != {geometry.shape}"
    assert np.all(np.isfinite(fraction)) and np.all(fraction >= 0), f"{name}: negative or non-finite fractions"
    # The map holds the evaluation radius: the flux must all be there (normalisation to 1 sr^-1).
    np.testing.assert_allclose(fraction.sum(), 1.0, rtol=1e-3, err_msg=f"{name} is not normalised")
    if model.evaluation_radius() > 0:
        fine = np.asarray(model.integrate_geom(geometry, oversample=16))
        # Flux put in the wrong pixels by the default sampling, as a fraction of the total:
        # sharp edges (disk, shell) move a little flux between edge pixels, < 1 % overall.
        misplaced = 0.5 * np.abs(fraction - fine).sum()
        assert misplaced < 1e-2, f"{name}: default sampling misplaces {misplaced:.2%} of the flux vs quadrature"
    lon, lat = geometry.lonlat()
    lon0, lat0 = model.position_in("galactic")
    centroid = ((fraction * lon).sum() / fraction.sum(), (fraction * lat).sum() / fraction.sum())
    tol = 0.1 * geometry.pixel_scale
    assert abs(centroid[0] - lon0) < tol and abs(centroid[1] - lat0) < tol, (
        f"{name}: flux centroid {centroid} is not at the centre ({lon0}, {lat0})")
    _check_round_trip(_perturbed(model), spatial_model_from_dict)


def check_background_estimator(estimator_or_cls: Any, *, name: str | None = None) -> None:
    """Check a background estimator class (built with defaults) or instance.

    On a flat field without source (counts = 3 x background model, lazy dask maps of
    2 x 90 x 100 pixels at 0.04 deg) every unbiased estimator must return the counts:
    checks that ``run`` builds a lazy result without computing, returns a new Dataset whose
    ``background`` has the dims, shape and ``units`` attribute of ``counts``, leaves the input
    unchanged, and that the estimate equals the counts (to 1e-6 relative, where finite and
    away from the map edge by 0.5 deg). ``name`` (or the class attribute ``name``) must
    resolve to the class in the registry.
    """
    import astropy.units as u
    import dask.array as da

    from xgamma.geometry import SkyGeometry
    from xgamma.maps import make_map
    from xgamma.plugin import get_registry

    estimator = _instance(estimator_or_cls)
    cls = type(estimator)
    key = name or getattr(cls, "name", None)
    assert isinstance(key, str) and key, f"{cls.__name__} needs a class attribute 'name'"
    assert get_registry().get_background_estimator(key) is cls, f"{key!r} does not resolve to {cls.__name__}"

    # 4 deg wide: room for the defaults of ring-like estimators (outer radii up to ~1.7 deg).
    geometry = SkyGeometry.create((0.0, 0.0), width=(4.0 * u.deg, 3.6 * u.deg), binsz=0.04 * u.deg,
                                  frame="galactic", energy_edges=[0.1, 1.0, 10.0] * u.TeV)
    shape = geometry.data_shape
    acceptance = make_map(da.full(shape, 2.0, chunks=(1, 45, 50)), geometry, name="background")
    counts = make_map(da.full(shape, 6.0, chunks=(1, 45, 50)), geometry, name="counts")
    dataset = acceptance.to_dataset().assign(counts=counts)
    before = dataset.copy()
    with raise_if_dask_computes():
        out = estimator.run(dataset)
    assert out is not dataset, f"{cls.__name__}.run must return a new Dataset"
    assert dataset.identical(before), f"{cls.__name__}.run modified its input"
    bkg = out["background"]
    assert bkg.dims == counts.dims and bkg.shape == counts.shape, (
        f"{cls.__name__}: background dims {bkg.dims} {bkg.shape} != counts {counts.dims} {counts.shape}")
    assert bkg.chunks is not None, f"{cls.__name__}: background is not lazy"
    assert isinstance(bkg.attrs.get("units"), str), f"{cls.__name__}: background has no 'units' attr"
    u.Unit(bkg.attrs["units"])  # must parse
    values = bkg.values
    edge = int(round(0.5 / 0.04))
    inner = values[:, edge:-edge, edge:-edge] if min(shape[1:]) > 2 * edge else values
    finite = np.isfinite(inner)
    assert finite.any(), f"{cls.__name__}: no finite background estimate inside the map"
    np.testing.assert_allclose(inner[finite], 6.0, rtol=1e-6,
                               err_msg=f"{cls.__name__}: biased estimate on a flat field")
