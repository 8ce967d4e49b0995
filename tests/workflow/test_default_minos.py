"""`fit.minos` defaults to the free radii of disks (their HESSE errors do not describe the likelihood)."""

from __future__ import annotations

from xgamma.models import BackgroundModel, Disk, Gaussian, Point, PowerLaw2, SkyModel
from xgamma.workflow.stages import default_minos


def _model(name, spatial):
    return SkyModel(spatial=spatial, spectral=PowerLaw2(), name=name)


def test_minos_by_default_for_free_disk_radii_only():
    frozen = Disk(lon_0=0.0, lat_0=0.0, r_0=0.2, frame="galactic")
    frozen.r_0.frozen = True
    models = [_model("disk", Disk(lon_0=0.0, lat_0=0.0, r_0=0.15, frame="galactic")), _model("fixed", frozen),
              _model("blob", Gaussian(lon_0=0.0, lat_0=0.0, sigma=0.15, frame="galactic")),
              _model("pt", Point(lon_0=0.0, lat_0=0.0, frame="galactic")), BackgroundModel()]
    assert default_minos(models) == ["disk.r_0"]
    assert default_minos(models[2:]) == []
