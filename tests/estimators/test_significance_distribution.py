"""Significance distribution: off-pixel selection, normal fit, plot."""

from __future__ import annotations

import astropy.units as u
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from xgamma.background import make_exclusion_mask  # noqa: E402
from xgamma.estimators import significance_distribution, significance_summary  # noqa: E402
from xgamma.exceptions import EstimatorError  # noqa: E402
from xgamma.plotting import plot_significance_distribution  # noqa: E402
from xgamma.geometry import SkyGeometry  # noqa: E402
from xgamma.maps import make_map  # noqa: E402


@pytest.fixture
def maps():
    geometry = SkyGeometry.create((0, 0), width=[4 * u.deg, 3 * u.deg], binsz=0.02 * u.deg,
                                  energy_edges=[1, 10] * u.TeV)
    rng = np.random.default_rng(42)
    sig = rng.normal(0.1, 1.3, size=geometry.data_shape)
    exclusion = make_exclusion_mask(geometry, "galactic; circle(0, 0, 0.5)")
    sig[0][~exclusion.values] += 8.0  # a "source" inside the exclusion region
    sig[0, :3, :] = np.nan  # and some undefined pixels
    return make_map(sig, geometry, name="significance"), exclusion


def test_fit_uses_finite_off_pixels(maps):
    sig, exclusion = maps
    dist = significance_distribution(sig, exclusion=exclusion)
    values = sig.values[0]
    off = np.isfinite(values) & exclusion.values
    # The normal maximum-likelihood fit is the sample mean and (1/N) standard deviation.
    assert dist.n_pixels == off.sum()
    assert dist.mean == pytest.approx(values[off].mean(), abs=1e-12)
    assert dist.std == pytest.approx(values[off].std(), rel=1e-12)
    # ... close to the simulated N(0.1, 1.3) (30 000 pixels: errors ~0.01)
    assert dist.mean == pytest.approx(0.1, abs=0.03) and dist.std == pytest.approx(1.3, abs=0.03)
    assert dist.counts_all.sum() == np.isfinite(values).sum()
    assert dist.counts_off.sum() == off.sum()
    assert dist.to_dict() == {"mean": dist.mean, "std": dist.std, "n_pixels": int(off.sum())}
    # without exclusion the source pixels pull the mean up
    assert significance_distribution(sig).mean > dist.mean


def test_plot_returns_figure(maps):
    sig, exclusion = maps
    fig = plot_significance_distribution(sig, exclusion=exclusion)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == "all pixels" and labels[1] == "off pixels" and labels[2].startswith("normal fit")


def test_no_off_pixels_is_an_error(maps):
    sig, exclusion = maps
    with pytest.raises(EstimatorError, match="no finite pixel outside the exclusion"):
        significance_distribution(sig, exclusion=exclusion & False)


def test_summary_json_layout(maps):
    import json

    import xarray as xr

    sig, exclusion = maps
    values = sig.values.copy()
    values[0, 100, 60] = 50.0  # the peak pixel
    summary = significance_summary(xr.Dataset({"significance": sig.copy(data=values), "exclusion": exclusion}))
    json.dumps(summary)  # plain Python types only
    assert summary["max_significance"] == 50.0
    geometry = SkyGeometry.create((0, 0), width=[4 * u.deg, 3 * u.deg], binsz=0.02 * u.deg)
    expected = geometry.pixel_to_skycoord(60.0, 100.0)
    assert summary["max_position"]["frame"] == "galactic"
    assert summary["max_position"]["lon"] == pytest.approx(expected.l.wrap_at("180d").deg, abs=1e-9)
    assert summary["max_position"]["lat"] == pytest.approx(expected.b.deg, abs=1e-9)
    assert set(summary["off_distribution"]) == {"mean", "std", "n_pixels"}


def test_summary_reports_ra_in_0_360():
    # MSH 15-52 (RA 228.5 deg) on an ICRS TAN map: reported as 228.5, not -131.5 (issue 10).
    import xarray as xr

    geometry = SkyGeometry.create((228.53, -59.16), width=2 * u.deg, binsz=0.02 * u.deg, frame="icrs",
                                  projection="TAN", energy_edges=[1, 10] * u.TeV)
    values = np.zeros(geometry.data_shape)
    values[0, 40, 70] = 5.0
    summary = significance_summary(xr.Dataset({"significance": make_map(values, geometry, name="significance")}))
    expected = geometry.pixel_to_skycoord(70.0, 40.0)
    assert summary["max_position"]["frame"] == "icrs"
    assert summary["max_position"]["lon"] == pytest.approx(expected.ra.deg, abs=1e-9)
    assert 0 <= summary["max_position"]["lon"] < 360
