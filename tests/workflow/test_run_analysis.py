"""`xgamma.workflow.run_analysis`: the reference analysis as one library call, from a config or from objects."""

from __future__ import annotations

import json

import astropy.units as u
import numpy as np
import pytest
import xarray as xr
from astropy.coordinates import SkyCoord

from xgamma.background.exclusion import make_exclusion_mask
from xgamma.exceptions import ConfigError, DataWarning
from xgamma.geometry import SkyGeometry, energy_edges
from xgamma.io.datastore import DataStore
from xgamma.models.io import background_model_from_dict, sky_model_from_dict
from xgamma.testing import raise_if_dask_computes
from xgamma.workflow import REFERENCE_STAGES, Analysis, Config, Stage, run_analysis, validate_config
from xgamma.workflow.stages import MAPS, OBSERVATION_IMAGES

OBS_IDS = [110380, 111140, 111159]
SOURCE = {"name": "gc", "spatial": {"type": "point", "lon_0": "0.01 deg", "lat_0": "0.01 deg", "frame": "galactic"},
          "spectral": {"type": "powerlaw2", "emin": "0.1 TeV", "emax": "10 TeV",
                       "index": {"value": 2, "frozen": True}, "amplitude": "3e-12 cm-2 s-1"}}
REGION = "galactic; circle(-0.05, -0.05, 0.3)"
#: 3 bins over 0.1-10 TeV: the bin-centre exposure is 11 % off at the source, and the fit says so.
COARSE_BINS = r"geometry.energy: at source 'gc' the exposure taken at the centres of the energy bins"


def small_config(datastore) -> dict:
    """A 2.4 x 2 deg, 3-bin version of examples/cta-gc-full.yaml (raw YAML values)."""
    return {
        "data": {"datastore": str(datastore), "obs_ids": OBS_IDS},
        "geometry": {"center": {"lon": "0 deg", "lat": "0 deg", "frame": "galactic"}, "width": ["2.4 deg", "2 deg"],
                     "binsz": "0.02 deg", "energy": {"min": "0.1 TeV", "max": "10 TeV", "nbins": 3}},
        "maps": {"offset_max": "4 deg"},
        "psf": {"max_radius": "0.3 deg"},
        "models": [SOURCE],
        "background_model": {"norm": {"value": 1, "frozen": True}},
        "exclusion": {"regions": [REGION]},
        "ring": {"r_in": "0.3 deg", "width": "0.3 deg", "offset_max": "3 deg"},
    }


@pytest.fixture(scope="module")
def from_config(cta_datastore_dir) -> Analysis:
    with pytest.warns(DataWarning, match=COARSE_BINS):
        return run_analysis(small_config(cta_datastore_dir))


def test_config_dict_gives_every_product_in_one_call(from_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing is written without an output folder
    analysis = from_config
    assert isinstance(analysis.config, Config)
    assert [int(o.obs_id) for o in analysis.observations] == OBS_IDS
    assert set(analysis.maps.data_vars) == {"counts", "exposure", "background"}
    assert analysis.maps.sizes == {"energy": 3, "lat": 100, "lon": 120}
    assert analysis.images.sizes["energy"] == 1
    assert analysis.observation_images.sizes["obs_id"] == 3
    # The stacked cube is the sum of the per-observation images the ring used.
    np.testing.assert_allclose(analysis.observation_images["counts"].sum("obs_id").values,
                               analysis.images["counts"].values)
    assert analysis.fit_result.success
    lon = analysis.fit_result.values["gc.lon_0"]
    assert abs(lon + 0.054) < 0.01  # Gammapy 2.1: -0.0544 deg on the full map (tests/fit)
    # The bin-centre exposure's bias at the source is recorded (index 2, 3 bins of 0.1-10 TeV: -10 %).
    exposure = analysis.summary["fit"]["bin_centre_exposure"]["gc"]
    assert exposure["corrected"] is False and 0.88 < exposure["ratio"] < 0.92
    assert {"npred", "residual", "residual_significance"} <= set(analysis.residuals.data_vars)
    assert {"excess", "significance", "exclusion"} <= set(analysis.significance.data_vars)
    assert analysis.distribution.n_pixels == int(analysis.significance["exclusion"].sum())
    assert analysis.summary["significance"]["max_significance"] > 10
    assert analysis.products == {} and list(tmp_path.iterdir()) == []
    assert "significance" in repr(analysis)


def test_python_objects_give_the_same_numbers(from_config, cta_datastore_dir):
    observations = DataStore(cta_datastore_dir).select(obs_ids=OBS_IDS).observations()
    geometry = SkyGeometry.create(SkyCoord(0, 0, unit="deg", frame="galactic"), width=(2.4 * u.deg, 2 * u.deg),
                                  binsz=0.02 * u.deg, frame="galactic",
                                  energy_edges=energy_edges(0.1 * u.TeV, 10 * u.TeV, 3))
    models = [sky_model_from_dict(SOURCE), background_model_from_dict({"norm": {"value": 1, "frozen": True}},
                                                                      name="background")]
    exclusion = make_exclusion_mask(geometry.to_image(), REGION)
    with pytest.warns(DataWarning, match=COARSE_BINS):
        analysis = run_analysis(
            {"maps": {"offset_max": 4 * u.deg}, "psf": {"max_radius": 0.3 * u.deg},
             "ring": {"r_in": 0.3 * u.deg, "width": "0.3 deg", "offset_max": 3 * u.deg}},
            observations=observations, geometry=geometry, models=models, exclusion=exclusion,
        )
    assert all(used is given for used, given in zip(analysis.models, models, strict=True))
    for name, value in from_config.fit_result.values.items():
        assert analysis.fit_result.values[name] == pytest.approx(value, rel=1e-9), name
    xr.testing.assert_allclose(analysis.significance, from_config.significance)


def test_output_folder_gets_the_files_of_xgamma_run(cta_datastore_dir, tmp_path):
    config = small_config(cta_datastore_dir)
    del config["models"], config["background_model"], config["psf"]  # maps + significance only
    analysis = run_analysis(config, output=tmp_path / "out")
    assert list(analysis.products) == ["maps", "images", "significance", "significance_json", "summary", "config"]
    assert all(path.is_file() for path in analysis.products.values())
    # The manifest, written last, lists exactly these files.
    manifest = json.loads((tmp_path / "out" / "products.json").read_text())
    assert sorted(manifest["files"]) == sorted(path.name for path in analysis.products.values())
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["maps"]["obs_ids"] == OBS_IDS and "fit" not in summary
    assert analysis.fit_result is None


def test_maps_stage_makes_observation_images_only_when_a_stage_needs_them(cta_datastore_dir):
    config = small_config(cta_datastore_dir)
    maps_only = {key: config[key] for key in ("data", "geometry", "maps")}
    analysis = run_analysis(maps_only)
    assert analysis.requested == frozenset() and analysis.observation_images is None
    assert analysis.significance is None and analysis.fit_result is None
    # A custom stage that needs them gets them from the maps stage, without the maps stage knowing it.
    seen = []
    peek = Stage("peek", wanted=lambda a: True, run=lambda a: seen.append(a.observation_images.sizes["obs_id"]),
                 needs=frozenset({OBSERVATION_IMAGES}))
    analysis = run_analysis(maps_only, stages=[MAPS, peek])
    assert analysis.requested == {OBSERVATION_IMAGES} and seen == [3]


def test_a_custom_stage_runs_after_the_reference_stages_and_writes_its_files(cta_datastore_dir, tmp_path):
    """The hook where source detection plugs in: a Stage after SIGNIFICANCE reads its products."""
    config = small_config(cta_datastore_dir)
    del config["models"], config["background_model"], config["psf"]

    def count_peaks(analysis):
        analysis.summary["peaks"] = int((analysis.significance["significance"] > 5).sum())

    def write_peaks(analysis, output):
        path = output / "peaks.txt"
        path.write_text(str(analysis.summary["peaks"]))
        return {"peaks": path}

    stages = (*REFERENCE_STAGES, Stage("peaks", wanted=lambda a: True, run=count_peaks, write=write_peaks))
    analysis = run_analysis(config, output=tmp_path, stages=stages)
    assert analysis.summary["peaks"] > 0
    assert list(analysis.products)[-3:] == ["peaks", "summary", "config"]
    assert (tmp_path / "peaks.txt").read_text() == str(analysis.summary["peaks"])


def test_observation_maps_are_lazy(from_config):
    with raise_if_dask_computes():
        cube = from_config.observation_maps()
    assert cube.sizes["obs_id"] == 3 and cube["counts"].chunks is not None


def test_validation_accepts_its_own_output_and_names_missing_sections(cta_datastore_dir):
    config = small_config(cta_datastore_dir)
    validated = validate_config(config)
    again = validate_config(validated)
    assert again.keys() == validated.keys()
    assert again["geometry"]["center"] == validated["geometry"]["center"]
    assert again["data"]["datastore"] == validated["data"]["datastore"]
    with pytest.raises(ConfigError, match="missing key 'data'"):
        run_analysis({"maps": {"offset_max": "4 deg"}})
    with pytest.raises(ConfigError, match="missing key 'maps'"):
        validate_config({"geometry": config["geometry"]}, required=("maps",))
