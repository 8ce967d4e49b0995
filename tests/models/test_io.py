"""YAML model files: round trip, Gammapy interoperability, config form, errors."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest

from xgamma.exceptions import ModelError, UnitError
from xgamma.models import (
    BackgroundModel, Disk, ExpCutoffPowerLaw, Gaussian, LogParabola, Point, PowerLaw, PowerLaw2, Shell, SkyModel,
    get_spatial_model_class, get_spectral_model_class, models_from_dict, read_models, write_models,
)


def _models():
    return [
        SkyModel(PowerLaw2(amplitude={"value": 3.1e-11, "unit": "cm-2 s-1", "error": 1.5e-12},
                           index={"value": 2, "frozen": True}, emin="0.1 TeV", emax="10 TeV"),
                 Point(lon_0="-0.054 deg", lat_0="-0.053 deg", frame="galactic"), name="source"),
        SkyModel(ExpCutoffPowerLaw(index=1.9, lambda_="0.05 TeV-1"),
                 Gaussian(lon_0=1.0, lat_0=0.2, sigma={"value": 0.2, "min": 0.01, "max": 1}, frame="galactic"),
                 name="gauss"),
        SkyModel(LogParabola(alpha=2.1, beta=0.2), Disk(lon_0=83.6, lat_0=22.0, r_0=0.1, frame="icrs"), name="disk"),
        SkyModel(PowerLaw(index=2.4), Shell(lon_0=1, lat_0=-1, radius=0.5, width=0.1, frame="galactic"), name="shell"),
        BackgroundModel(norm=1.02, tilt={"value": 0.01, "frozen": False}, name="stacked-bkg",
                        datasets_names=["stacked"]),
    ]


def test_yaml_roundtrip_returns_equal_models(tmp_path):
    models = _models()
    path = tmp_path / "models.yaml"
    write_models(models, path)
    back = read_models(path)
    assert back == models
    back[0].spatial.lon_0.value = 0.0
    assert back != models  # equality looks at values


def test_write_refuses_to_overwrite(tmp_path):
    path = tmp_path / "m.yaml"
    write_models(_models(), path)
    with pytest.raises(ModelError, match="overwrite=True"):
        write_models(_models(), path)


def test_config_form_of_the_fit_stage():
    # The `models:` / `background_model:` sections of `xgamma run` (issue 3).
    entry = {"name": "source",
             "spatial": {"type": "point", "lon_0": "0.01 deg", "lat_0": "0.01 deg", "frame": "galactic"},
             "spectral": {"type": "powerlaw2", "emin": "0.1 TeV", "emax": "10 TeV",
                          "index": {"value": 2, "frozen": True}, "amplitude": "3e-12 cm-2 s-1"}}
    bkg = {"norm": {"value": 1, "frozen": True}, "tilt": {"value": 0, "frozen": True}}
    from xgamma.models.io import background_model_from_dict, sky_model_from_dict

    model = sky_model_from_dict(entry)
    assert model.spectral.amplitude.quantity == 3e-12 * u.Unit("cm-2 s-1")
    assert model.spectral.index.frozen and model.spectral.emax.value == 10.0
    assert model.spatial.frame == "galactic"
    b = background_model_from_dict(bkg)
    assert b.norm.frozen and b.tilt.frozen and b.name == "background"


def test_unknown_type_lists_known_models():
    """The message lists every registered model: the built-ins, and any installed plugin's."""
    from xgamma.plugin import get_registry

    registry = get_registry()
    with pytest.raises(ModelError, match=r"unknown spectral model 'powerlaw3'; known spectral models: ") as info:
        get_spectral_model_class("powerlaw3")
    listed = str(info.value).split("known spectral models: ")[1].split(".")[0].split(", ")
    assert listed == sorted(registry.spectral_models)
    assert {"ecpl", "logparabola", "powerlaw", "powerlaw-norm", "powerlaw2"} <= set(listed)
    with pytest.raises(ModelError, match=r"unknown spatial model 'ring'; known spatial models: ") as info:
        models_from_dict({"components": [{"name": "x", "spectral": {"type": "pl"}, "spatial": {"type": "ring"}}]})
    listed = str(info.value).split("known spatial models: ")[1].split(".")[0].split(", ")
    assert listed == sorted(registry.spatial_models)
    assert {"disk", "gaussian", "point", "shell", "template"} <= set(listed)
    assert get_spatial_model_class("GaussianSpatialModel") is Gaussian
    assert get_spectral_model_class("pl-2") is PowerLaw2


def test_bad_parameters_in_files_are_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("components:\n- name: s\n  type: SkyModel\n  spectral:\n    type: PowerLawSpectralModel\n"
                    "    parameters:\n    - {name: index, value: 2}\n    - {name: amplitude, value: 1, unit: deg}\n"
                    "  spatial: {type: PointSpatialModel, frame: icrs, parameters: []}\n")
    with pytest.raises(UnitError, match=r"bad.yaml.*'amplitude'.*deg"):
        read_models(path)
    path.write_text(path.read_text().replace("{name: amplitude, value: 1, unit: deg}", "{name: amp, value: 1}"))
    with pytest.raises(ModelError, match=r"unknown parameter 'amp'.*known: \['index', 'amplitude', 'reference'\]"):
        read_models(path)
    with pytest.raises(ModelError, match="elongated"):
        models_from_dict({"components": [{"name": "g", "spectral": {"type": "pl"}, "spatial": {
            "type": "gauss", "parameters": [{"name": "e", "value": 0.5}]}}]})


@pytest.mark.gammapy
def test_reads_file_written_by_gammapy_and_gammapy_reads_ours(tmp_path):
    from gammapy.modeling import models as gm

    ref = gm.Models([
        gm.SkyModel(spatial_model=gm.PointSpatialModel(lon_0="0.01 deg", lat_0="0.02 deg", frame="galactic"),
                    spectral_model=gm.PowerLaw2SpectralModel(amplitude="3e-12 cm-2 s-1", emin="0.1 TeV",
                                                             emax="10 TeV"), name="source"),
        gm.SkyModel(spatial_model=gm.GaussianSpatialModel(lon_0="1 deg", lat_0="0.5 deg", sigma="0.2 deg",
                                                          frame="galactic"),
                    spectral_model=gm.ExpCutoffPowerLawSpectralModel(), name="g"),
        gm.SkyModel(spatial_model=gm.DiskSpatialModel(lon_0="83 deg", lat_0="22 deg", r_0="0.3 deg"),
                    spectral_model=gm.LogParabolaSpectralModel(), name="d"),
        gm.SkyModel(spatial_model=gm.ShellSpatialModel(lon_0="1 deg", lat_0="0.5 deg", radius="0.2 deg",
                                                       width="0.1 deg", frame="galactic"),
                    spectral_model=gm.PowerLawSpectralModel(), name="s"),
        gm.FoVBackgroundModel(dataset_name="stacked"),
    ])
    ref["source"].spectral_model.index.frozen = True
    ref["g"].spatial_model.sigma.min = 0.05
    gp_file = tmp_path / "gammapy.yaml"
    ref.write(gp_file)
    ours = read_models(gp_file)
    assert [m.name for m in ours] == ["source", "g", "d", "s", "stacked-bkg"]
    for gp_model, model in zip(ref, ours):
        gp_params = {p.name: p for p in gp_model.parameters if p.name not in ("e", "phi")}
        mine = {p.name: p for p in model.parameters}
        assert set(mine) == set(gp_params)
        for name, p in mine.items():
            q = gp_params[name]
            assert p.quantity.to_value(q.unit) == pytest.approx(q.value, rel=1e-12), name
            assert p.frozen == q.frozen, name
            assert np.array_equal(np.nan_to_num([p.min, p.max], nan=-1),
                                  np.nan_to_num([q.min, q.max], nan=-1)) or name != "sigma", name
    # ...and back: Gammapy reads our file to the same values and flags.
    ours_file = tmp_path / "xgamma.yaml"
    write_models(ours, ours_file)
    again = gm.Models.read(ours_file)
    for a, b in zip(ref, again):
        for pa, pb in zip(a.parameters, b.parameters):
            assert (pa.name, pa.frozen) == (pb.name, pb.frozen)
            assert pb.quantity.to_value(pa.unit) == pytest.approx(pa.value, rel=1e-12)
    # Same physics: our dN/dE equals Gammapy's at a few energies.
    e = [0.3, 3, 30] * u.TeV
    for a, b in zip(ref[:4], ours[:4]):
        np.testing.assert_allclose(b.spectral(e).to_value("TeV-1 cm-2 s-1"),
                                   a.spectral_model(e).to_value("TeV-1 cm-2 s-1"), rtol=1e-10)


def test_template_model_file_reads_fits_image(tmp_path):
    from astropy.io import fits

    from xgamma.geometry import SkyGeometry
    from xgamma.models import PixelGrid

    geom = SkyGeometry.create((0, 0), width=1 * u.deg, binsz=0.05 * u.deg, frame="galactic")
    image = np.zeros(geom.shape)
    image[8:12, 9:11] = 3.0  # a 4 x 2 pixel block
    fits.PrimaryHDU(image, header=geom.to_header()).writeto(tmp_path / "template.fits")
    (tmp_path / "m.yaml").write_text(
        "components:\n- name: t\n  type: SkyModel\n  spectral: {type: PowerLawSpectralModel, parameters: []}\n"
        "  spatial: {type: TemplateSpatialModel, frame: galactic, filename: template.fits, normalize: true}\n")
    (model,) = read_models(tmp_path / "m.yaml")
    frac = model.spatial.integrate_geom(PixelGrid.from_geometry(geom))
    # Normalised template on its own grid: 1/8 of the flux in each of the 8 pixels.
    np.testing.assert_allclose(frac[8:12, 9:11], 1 / 8, rtol=1e-3)
    assert frac.sum() == pytest.approx(1.0, rel=1e-3)
    (tmp_path / "m.yaml").write_text((tmp_path / "m.yaml").read_text().replace("template.fits", "missing.fits"))
    with pytest.raises(ModelError, match="template file 'missing.fits' not found"):
        read_models(tmp_path / "m.yaml")


def test_in_memory_template_cannot_be_written(tmp_path):
    from astropy.wcs import WCS

    from xgamma.models import Template

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["GLON-CAR", "GLAT-CAR"]
    wcs.wcs.cdelt = [-0.1, 0.1]
    model = SkyModel(PowerLaw(), Template(np.ones((5, 5)), wcs, frame="galactic"), name="tmpl")
    with pytest.raises(ModelError, match="'tmpl': its template has no file"):
        write_models([model], tmp_path / "t.yaml")
