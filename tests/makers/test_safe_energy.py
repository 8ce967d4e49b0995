"""Safe data range: the methods of Gammapy 2.1's SafeMaskMaker, on real H.E.S.S. runs and analytic cases."""

from __future__ import annotations

import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from xgamma.exceptions import ConfigError
from xgamma.geometry import SkyGeometry, energy_edges
from xgamma.io.datastore import DataStore
from xgamma.makers import make_maps
from xgamma.makers.safe_energy import SafeEnergy, safe_energy_mask

# Two runs per target with different thresholds (the other runs of these targets agree too).
TARGETS = {"crab": ((83.633, 22.014), [23523, 23526]), "pks2155": ((329.717, -30.2256), [33787, 33789])}
RECO = energy_edges(0.1 * u.TeV, 10 * u.TeV, 10)
TRUE = energy_edges(0.05 * u.TeV, 20 * u.TeV, 26)
METHODS = [{"methods": ["aeff-default"]}, {"methods": ["aeff-max"], "aeff_percent": 10},
           {"methods": ["aeff-max"], "aeff_percent": 20}, {"methods": ["edisp-bias"], "bias_percent": 10},
           {"methods": ["bkg-peak"]}, {"methods": ["aeff-max"], "aeff_percent": 10, "fixed_offset": 1.0 * u.deg}]


@pytest.mark.gammapy
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_masks_match_gammapy(target, hess_datastore_dir):
    # Gammapy's default ("DL4") evaluation: the IRFs on the dataset's axes at the map centre,
    # the background summed over the map. Every (run, method) mask must be the same.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from gammapy.data import DataStore as GammapyDataStore
        from gammapy.datasets import MapDataset
        from gammapy.makers import MapDatasetMaker, SafeMaskMaker
        from gammapy.maps import MapAxis, WcsGeom

    (ra, dec), obs_ids = TARGETS[target]
    centre = SkyCoord(ra, dec, unit="deg")
    geom = WcsGeom.create(skydir=centre, binsz=0.1, width=2, frame="icrs", proj="TAN",
                          axes=[MapAxis.from_edges(RECO, name="energy", interp="log")])
    empty = MapDataset.create(geom, energy_axis_true=MapAxis.from_edges(TRUE, name="energy_true", interp="log"))
    geometry = SkyGeometry.create(centre, width=2 * u.deg, binsz=0.1 * u.deg, frame="icrs", projection="TAN",
                                  energy_edges=RECO)
    maker = MapDatasetMaker(selection=["exposure", "edisp", "background"])  # what the methods read
    gammapy_store, store = GammapyDataStore.from_dir(hess_datastore_dir), DataStore(hess_datastore_dir)
    compared = 0
    for obs_id in obs_ids:
        dataset = maker.run(empty.copy(name=f"run{obs_id}"), gammapy_store.obs(obs_id))
        for settings in METHODS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                reference = SafeMaskMaker(**settings).run(dataset.copy(name="masked"), gammapy_store.obs(obs_id))
            # Gammapy also masks pixels without background; the centre pixel has some.
            expected = reference.mask_safe.data[:, 10, 10]
            got = safe_energy_mask(store.observation(obs_id), geometry, SafeEnergy.parse(settings), energy_true=TRUE)
            assert (got == expected).all(), (obs_id, settings, got.astype(int), expected.astype(int))
            compared += 1
    assert compared == len(obs_ids) * len(METHODS)


def test_aeff_max_threshold_is_where_the_area_reaches_the_fraction(hess_datastore_dir):
    # Analytic check of the inversion: the first safe bin starts above the energy where the
    # effective area (log-log interpolated between the true-bin centres) crosses 10 % of its
    # maximum, and the bin before it starts below that energy.
    obs = DataStore(hess_datastore_dir).observation(23523)
    centre = obs.pointing.directional_offset_by(0 * u.deg, 0.5 * u.deg)
    geometry = SkyGeometry.create(centre, width=2 * u.deg, binsz=0.1 * u.deg, frame="icrs", energy_edges=RECO)
    mask = safe_energy_mask(obs, geometry, {"methods": ["aeff-max"], "aeff_percent": 10}, energy_true=TRUE)
    centres = np.sqrt(TRUE[1:] * TRUE[:-1]).to_value("TeV")
    area = obs.aeff.evaluate(centres * u.TeV, 0.5 * u.deg).to_value("m2")
    fine = np.geomspace(centres[0], centres[-1], 20001)
    interpolated = np.exp(np.interp(np.log(fine), np.log(centres), np.log(np.maximum(area, 1e-300))))
    threshold = fine[np.argmax(interpolated >= 0.1 * area.max())]
    first = int(np.argmax(mask))
    assert mask[first:].all() and not mask[:first].any()
    assert RECO[first].to_value("TeV") >= threshold * (1 - 1e-3) > RECO[first - 1].to_value("TeV")


def test_offset_max_cuts_each_observation(hess_datastore_dir):
    # "offset-max" tightens the maps' offset cut per observation: the same maps as offset_max
    # set to that value, and exposure only within it of some pointing.
    observations = DataStore(hess_datastore_dir).observations([23523, 23526])
    geometry = SkyGeometry.create((83.633, 22.014), width=3 * u.deg, binsz=0.05 * u.deg, frame="icrs",
                                  energy_edges=energy_edges(1 * u.TeV, 10 * u.TeV, 2))
    cut = make_maps(observations, geometry, offset_max=2.5 * u.deg,
                    safe_energy={"methods": ["offset-max"], "offset_max": 1.2 * u.deg}).compute()
    plain = make_maps(observations, geometry, offset_max=1.2 * u.deg).compute()
    np.testing.assert_array_equal(cut.exposure.values, plain.exposure.values)
    np.testing.assert_array_equal(cut.counts.values, plain.counts.values)
    near = np.min([geometry.separation(o.pointing) for o in observations], axis=0) < 1.2
    assert (cut.exposure.values[:, ~near] == 0).all() and (cut.exposure.values[:, near] > 0).all()


@pytest.mark.parametrize("value, match", [
    ("aeff-defualt", "unknown method 'aeff-defualt'"),
    (["aeff-max", "bogus"], "unknown method 'bogus'"),
    ({"methods": ["aeff-max"], "aeff_percent": 150}, "aeff_percent"),
    ({"methods": ["edisp-bias"], "bias_percent": "ten"}, "bias_percent"),
    ({"methods": ["aeff-max"], "percent": 10}, "maps.safe_energy.percent"),
    ({"methods": ["aeff-max"], "position": SkyCoord(0, 0, unit="deg"), "fixed_offset": 1 * u.deg}, "exclusive"),
    ({"methods": ["offset-max"], "offset_max": "0 deg"}, "offset_max"),
    ([], "at least one method"),
    (3, "expected a method name"),
])
def test_bad_settings_name_the_key(value, match):
    with pytest.raises(ConfigError, match=match):
        SafeEnergy.parse(value)


def test_configuration_forms():
    assert SafeEnergy.parse(None) is None
    assert SafeEnergy.parse("aeff-max").methods == ("aeff-max",)
    both = SafeEnergy.parse({"methods": ["aeff-default", "edisp-bias"], "bias_percent": 5, "offset_max": "2 deg"})
    assert both.methods == ("aeff-default", "edisp-bias") and both.bias_percent == 5
    assert both.offset_max.deg == 2 and both.energy_methods == ("aeff-default", "edisp-bias")
