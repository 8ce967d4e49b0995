"""Estimator plots: SED with butterfly and upper limits, light curves, TS / flux maps with sources marked."""

from __future__ import annotations

import astropy.units as u
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from estimator_maps import simulated_maps  # noqa: E402

from xgamma.estimators import find_peaks, flux_points, ts_map  # noqa: E402
from xgamma.exceptions import EstimatorError  # noqa: E402
from xgamma.fit import MapDataset, fit  # noqa: E402
from xgamma.models import BackgroundModel, Point, PowerLaw, SkyModel  # noqa: E402
from xgamma.plotting import model_band, plot_estimator_map, plot_sed, plot_sources  # noqa: E402

EDGES = np.geomspace(0.5, 50, 9)


@pytest.fixture(scope="module")
def fitted():
    maps, psf = simulated_maps(sources=[(40, 30, 3e-12), (15, 12, 1.5e-12)], energy_edges=EDGES, seed=3)
    position = maps.counts.sky.geometry.pixel_to_skycoord(40, 30)
    source = SkyModel(PowerLaw(index=2.2, amplitude="1e-12 TeV-1 cm-2 s-1"),
                      Point(lon_0=position.l, lat_0=position.b, frame="galactic"), name="src")
    dataset = MapDataset.from_maps(maps, psf=psf, models=[source, BackgroundModel(norm={"value": 1, "frozen": True})])
    result = fit(dataset)
    return maps, psf, dataset, result


def test_model_band_is_the_linear_error_propagation(fitted):
    _, _, dataset, result = fitted
    spectral = dataset.models[0].spectral
    energy = np.array([1.0, 3.0])
    value, error = model_band(spectral, energy, result, sed_type="dnde")
    index, amplitude = spectral.values[0], spectral.values[1]
    cov = result.covariance.sel(param_i=["src.index", "src.amplitude"], param_j=["src.index", "src.amplitude"]).values
    # dnde = A E^-index: d/dA = E^-index, d/dindex = -ln E A E^-index
    jac = np.array([-np.log(energy) * amplitude * energy**-index, energy**-index])
    np.testing.assert_allclose(value, amplitude * energy**-index)
    np.testing.assert_allclose(error, np.sqrt(np.einsum("ie,ij,je->e", jac, cov, jac)), rtol=1e-6)
    assert error[0] == pytest.approx(result.errors["src.amplitude"], rel=1e-6)  # at the reference energy


def test_sed_plot_has_points_upper_limits_and_butterfly(fitted, tmp_path):
    _, _, dataset, result = fitted
    points = flux_points(dataset, "src", energy_edges=EDGES[::2] * u.TeV)
    points["is_ul"][-1] = True  # draw the last one as an upper limit
    ax = plot_sed(points, dataset.models[0].spectral, covariance=result)
    assert ax.get_xscale() == "log" and "TeV cm-2 s-1" in ax.get_ylabel()
    assert len(ax.collections) >= 1  # the butterfly band
    caps = [line for container in ax.containers for line in getattr(container, "lines", [])]
    assert caps  # error bars and the upper-limit arrow
    ax.figure.savefig(tmp_path / "sed.png")
    plt.close(ax.figure)
    with pytest.raises(EstimatorError, match="sed_type"):
        plot_sed(points, sed_type="nufnu")


def test_ts_map_plot_marks_the_detected_peaks(fitted, tmp_path):
    maps, psf, _, _ = fitted
    ts = ts_map(maps, psf=psf, selection_optional=("ul",))
    peaks = find_peaks(ts["sqrt_ts"], threshold=5, min_distance=5)
    assert len(peaks) == 2
    ax = plot_estimator_map(ts, "sqrt_ts", sources=peaks)
    texts = [t.get_text().strip() for t in ax.texts]
    assert texts == ["S1", "S2"]
    assert ax.figure.axes[-1].get_ylabel() == "sqrt(TS) (sigma)"
    ax.figure.savefig(tmp_path / "ts.png")
    plt.close(ax.figure)
    ax = plot_estimator_map(ts, "flux_ul", sources=[fitted[2].models[0]])
    assert ax.figure.axes[-1].get_ylabel() == "flux_ul (cm-2 s-1)"
    assert [t.get_text().strip() for t in ax.texts] == ["src"]
    plt.close(ax.figure)
    with pytest.raises(EstimatorError, match="no 'excess'"):
        plot_estimator_map(ts, "excess")
    with pytest.raises(EstimatorError, match="ra/dec or lon/lat"):
        plot_sources(ax, peaks[["value"]])
