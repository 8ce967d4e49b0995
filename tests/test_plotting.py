"""Plots on WCS axes, from real CTA maps: images, colour bars, error ellipses and the PNG set.

The PNG files written by `test_save_analysis_plots` were also looked at by eye (see the note of
issue 6): counts / background / excess / significance show the Galactic-centre sources on
galactic grids with labelled colour bars, the source-position cutout shows the 1 and 2 sigma
ellipses at the fitted position.
"""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import astropy.units as u
import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pytest
import xarray as xr
from astropy.coordinates import SkyCoord

from xgamma.exceptions import DataWarning, FitError, GeometryError
from xgamma.plotting import (
    PLOT_FILES,
    error_ellipse,
    plot_counts,
    plot_map,
    plot_residuals,
    plot_significance,
    plot_source_position,
    save_analysis_plots,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


#: The warning of `xgamma.fit.exposure_check` about wide energy bins.
COARSE_BINS = r"geometry.energy: at source '\w+' the exposure taken at the centres of the energy bins"


@pytest.fixture(scope="module")
def analysis(cta_datastore_dir):
    """A small real analysis: 2.4 x 2 deg around the Galactic centre, 3 CTA runs, 3 energy bins."""
    from xgamma import DataStore, SkyGeometry, energy_edges, make_maps, squash_energy
    from xgamma.background import RingBackground, make_exclusion_mask
    from xgamma.estimators import significance_maps
    from xgamma.fit import MapDataset, fit, psf_kernel_for_geometry
    from xgamma.models import BackgroundModel, Point, PowerLaw2, SkyModel

    observations = DataStore(cta_datastore_dir).observations([110380, 111140, 111159])
    geometry = SkyGeometry.create((0, 0), width=(2.4 * u.deg, 2 * u.deg), binsz=0.02 * u.deg,
                                  energy_edges=energy_edges(0.1 * u.TeV, 10 * u.TeV, 3))
    cube = make_maps(observations, geometry, offset_max=4 * u.deg).compute()
    images = squash_energy(cube)
    psf = psf_kernel_for_geometry(observations, geometry, SkyCoord(0, 0, unit="deg", frame="galactic"),
                                  image=True, max_radius=0.3 * u.deg)
    source = SkyModel(PowerLaw2(amplitude="3e-12 cm-2 s-1", index={"value": 2.0, "frozen": True},
                                emin="0.1 TeV", emax="10 TeV"),
                      Point(lon_0="0.01 deg", lat_0="0.01 deg", frame="galactic"), name="src")
    dataset = MapDataset.from_maps(images, psf=psf,
                                   models=[source, BackgroundModel(norm={"value": 1.0, "frozen": True})])
    # 3 bins over 0.1-10 TeV: the bin-centre exposure is 11 % off at the source, and fit says so.
    with pytest.warns(DataWarning, match=COARSE_BINS):
        result = fit(dataset)
    exclusion = make_exclusion_mask(geometry, "galactic; circle(0, 0, 0.3)")
    ring = RingBackground(r_in="0.3 deg", width="0.3 deg", exclusion=exclusion).run(images)
    sig = significance_maps(ring, correlation_radius="0.1 deg").compute()
    return {"cube": cube, "images": images, "dataset": dataset, "result": result,
            "exclusion": exclusion, "sig": sig}


def _wcs_axes(da):
    fig = plt.figure()
    return fig.add_subplot(projection=da.sky.wcs)


def test_plot_map_draws_the_data_with_labels_grid_and_colorbar(analysis):
    counts = analysis["images"]["counts"]
    ax = plot_map(counts, title="counts image")
    # The image drawn is the map itself, row 0 = lowest latitude (origin="lower").
    drawn = np.asarray(ax.get_images()[0].get_array())
    np.testing.assert_array_equal(drawn, counts.values[0])
    assert ax.coords[0].get_axislabel() == "Galactic longitude"
    assert ax.coords[1].get_axislabel() == "Galactic latitude"
    assert ax.get_title() == "counts image"
    colorbar_axes = [a for a in ax.figure.axes if a is not ax]
    assert len(colorbar_axes) == 1
    assert colorbar_axes[0].get_ylabel() == "counts"
    # The grid of the map's frame is on.
    helper = vars(ax.coords[0])  # no public getter; astropy 7 made grid_lines_kwargs private (_grid_lines_kwargs)
    assert helper.get("_grid_lines_kwargs", helper.get("grid_lines_kwargs"))["visible"] is True


def test_colorbar_label_carries_units(analysis):
    exposure = analysis["images"]["exposure"]
    ax = plot_map(exposure, stretch="sqrt", overlay="icrs")
    cbar = [a for a in ax.figure.axes if a is not ax][0]
    assert cbar.get_ylabel() == "exposure (m2 s)"


def test_plot_map_of_a_cube_needs_an_energy_index(analysis):
    cube = analysis["cube"]["counts"]
    with pytest.raises(GeometryError, match="has 3 energy bins; pass energy_index"):
        plot_map(cube)
    with pytest.raises(GeometryError, match="energy_index=5 out of range"):
        plot_map(cube, energy_index=5)
    ax = plot_map(cube, energy_index=1)
    np.testing.assert_array_equal(np.asarray(ax.get_images()[0].get_array()), cube.values[1])


def test_plot_map_input_errors(analysis):
    counts = analysis["images"]["counts"]
    with pytest.raises(GeometryError, match="unknown stretch 'cubic'"):
        plot_map(counts, stretch="cubic")
    fig, plain = plt.subplots()
    with pytest.raises(GeometryError, match="ax must be WCSAxes"):
        plot_map(counts, ax=plain)
    with pytest.raises(GeometryError, match="expected an xarray.DataArray"):
        plot_map(counts.values)
    with pytest.raises(GeometryError, match="overlay frame 'fk4'"):
        plot_map(counts, overlay="fk4")


def test_smoothing_keeps_nan_pixels_and_total_away_from_edges(analysis):
    sig = analysis["sig"]["significance"]
    ax = plot_map(sig, smooth="0.06 deg")
    drawn = np.asarray(ax.get_images()[0].get_array())
    # NaN pixels (no off measurement) stay NaN; finite ones stay finite.
    np.testing.assert_array_equal(np.isnan(drawn), np.isnan(sig.values[0]))
    counts = analysis["images"]["counts"]
    ax = plot_counts(counts, smooth="0.04 deg")
    smoothed = np.asarray(ax.get_images()[0].get_array())
    # Gaussian smoothing conserves the sum far from the borders (sigma = 2 px, margin 20 px);
    # normalised convolution differs only near the edges. 1 % tolerance for the edge leakage.
    inner = (slice(20, -20), slice(20, -20))
    assert smoothed[inner].sum() == pytest.approx(counts.values[0][inner].sum(), rel=0.01)


def test_plot_significance_is_centred_on_zero(analysis):
    sig = analysis["sig"]
    ax = plot_significance(sig["significance"], exclusion=analysis["exclusion"], levels=(3, 5))
    norm = ax.get_images()[0].norm
    # Capped at -5 .. +10 sigma with white at 0, so 3-10 sigma structure is not washed out by
    # the peak; the peak value goes into the legend, the contours and the exclusion border too.
    assert (norm.vmin, norm.vcenter, norm.vmax) == (-5.0, 0.0, 10.0)
    peak = float(np.nanmax(sig["significance"].values))
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == ["3, 5 sigma contour", "exclusion border", f"peak {peak:.1f} sigma"]
    symmetric = plot_significance(sig["significance"], vmin=None, vmax=None).get_images()[0].norm
    assert symmetric.vmin == -symmetric.vmax == pytest.approx(-float(np.nanmax(np.abs(sig["significance"].values))))
    # Pixels without a value (no off measurement) are grey, not the white of 0 sigma.
    from matplotlib.colors import to_rgba

    assert ax.get_images()[0].cmap.get_bad() == pytest.approx(to_rgba("0.85"))
    # Two contour sets: the 3 and 5 sigma levels, and the exclusion border.
    assert len(ax.collections) >= 2
    with pytest.raises(GeometryError, match="exclusion mask shape"):
        plot_significance(sig["significance"], exclusion=analysis["exclusion"].isel(lat=slice(0, 10)))


def test_plot_residuals_side_by_side(analysis):
    residuals = analysis["dataset"].residual_maps()
    fig = plot_residuals(residuals)
    wcs_axes = [a for a in fig.axes if hasattr(a, "coords")]
    assert [a.get_title() for a in wcs_axes] == ["Residual counts", "Residual significance"]
    # Both colour scales are symmetric about 0.
    for ax in wcs_axes:
        norm = ax.get_images()[0].norm
        assert norm.vmin == pytest.approx(-norm.vmax)
    with pytest.raises(GeometryError, match="lacks"):
        plot_residuals(residuals[["npred"]])


def test_error_ellipse_analytic():
    # Uncorrelated: axes are 2 n sqrt(variance), the larger along lon.
    width, height, angle = error_ellipse([[4.0, 0.0], [0.0, 1.0]], n_sigma=1)
    assert (width, height) == pytest.approx((4.0, 2.0))
    assert angle % 180 == pytest.approx(0.0, abs=1e-9)
    # Rotated by 30 deg: cov = R diag(9, 1) R^T.
    theta = np.radians(30)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    cov = rot @ np.diag([9.0, 1.0]) @ rot.T
    width, height, angle = error_ellipse(cov, n_sigma=2)
    assert (width, height) == pytest.approx((12.0, 4.0))
    assert angle % 180 == pytest.approx(30.0)
    with pytest.raises(FitError, match="not positive semi-definite"):
        error_ellipse([[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(FitError, match="finite 2 x 2"):
        error_ellipse([[np.nan, 0], [0, 1]])


def test_plot_source_position_from_fit_result(analysis):
    result = analysis["result"]
    counts = analysis["images"]["counts"]
    ax = plot_counts(counts)
    artists = plot_source_position(ax, result)
    marker, ellipses = artists[0], artists[1:]
    assert len(ellipses) == 2
    lon, lat = result.values["src.lon_0"], result.values["src.lat_0"]
    # The marker sits at the fitted position: compare display coordinates of the marker with
    # the WCS pixel of the fitted (lon, lat).
    x, y = counts.sky.wcs.wcs_world2pix(lon, lat, 0)
    disp_marker = marker.get_transform().transform(np.column_stack(marker.get_data()))[0]
    disp_pixel = ax.transData.transform([[x, y]])[0]
    np.testing.assert_allclose(disp_marker, disp_pixel, atol=1e-6)
    # Projection property of the Delta C = 1 ellipse: its extent along lon is +- sigma_lon.
    cov = result.covariance.sel(param_i=["src.lon_0", "src.lat_0"], param_j=["src.lon_0", "src.lat_0"]).values
    t = np.linspace(0, 2 * np.pi, 3601)
    circle = np.column_stack([np.cos(t), np.sin(t)])  # the patch transform maps it onto the ellipse
    world = ellipses[0].get_patch_transform().transform(circle)
    assert world[:, 0].max() - lon == pytest.approx(np.sqrt(cov[0, 0]), rel=1e-4)
    assert world[:, 1].max() - lat == pytest.approx(np.sqrt(cov[1, 1]), rel=1e-4)
    world2 = ellipses[1].get_patch_transform().transform(circle)
    assert world2[:, 1].max() - lat == pytest.approx(2 * np.sqrt(cov[1, 1]), rel=1e-4)
    # The fitted source is the known bright Galactic-centre source near (-0.05, -0.05) deg.
    assert lon == pytest.approx(-0.05, abs=0.02)
    assert lat == pytest.approx(-0.05, abs=0.02)


def test_plot_source_position_from_skycoord_and_errors(analysis):
    counts = analysis["images"]["counts"]
    ax = plot_counts(counts)
    position = SkyCoord(0.1, 0.2, unit="deg", frame="galactic").icrs  # converted to the axes' frame
    artists = plot_source_position(ax, (position, [[1e-4, 0], [0, 1e-4]]), n_sigma=(1,))
    assert len(artists) == 2
    np.testing.assert_allclose(artists[1].center, (0.1, 0.2), atol=1e-9)
    from xgamma.fit import FitResult

    no_position = FitResult(
        parameters=[{"model": "bkg", "name": "norm", "value": 1.0, "error": 0.1, "unit": "", "frozen": False}],
        covariance=xr.DataArray([[0.01]], dims=("param_i", "param_j"),
                                coords={"param_i": ["bkg.norm"], "param_j": ["bkg.norm"]}),
        statistic=0.0, success=True, nfev=1)
    with pytest.raises(FitError, match="no model with a free position"):
        plot_source_position(ax, no_position)
    with pytest.raises(FitError, match="no position parameters"):
        plot_source_position(ax, analysis["result"], model="nothere")
    fig, plain = plt.subplots()
    with pytest.raises(GeometryError, match="ax must be WCSAxes"):
        plot_source_position(plain, analysis["result"])


def test_accessor_plot(analysis):
    ax = analysis["images"]["background"].sky.plot(cmap="magma")
    assert hasattr(ax, "coords")
    np.testing.assert_array_equal(np.asarray(ax.get_images()[0].get_array()),
                                  analysis["images"]["background"].values[0])


def test_save_analysis_plots(analysis, tmp_path):
    sig = analysis["sig"]
    images = analysis["images"]
    products = {
        "counts": images["counts"],
        "background": images["background"],
        "excess": sig["excess"],
        "significance": sig["significance"],
        "exclusion": analysis["exclusion"],
        "residuals": analysis["dataset"].residual_maps(),
        "fit_result": analysis["result"],
    }
    paths = save_analysis_plots(products, tmp_path / "plots")
    assert sorted(p.name for p in paths) == sorted(PLOT_FILES.values())
    for path in paths:
        picture = mpimg.imread(path)
        # A real picture: a few hundred pixels each way, and not blank.
        assert picture.shape[0] > 300 and picture.shape[1] > 300, path.name
        assert picture[..., :3].std() > 0.05, path.name
    # No temporary file is left behind.
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(PLOT_FILES.values())
    # Only the products whose inputs exist are drawn; the `xgamma run` stage passes the background
    # model as "background_model", the exclusion as int16 and possibly distribution=None.
    stage_like = {"background_model": images["background"], "significance": sig["significance"],
                  "exclusion": analysis["exclusion"].astype(np.int16), "distribution": None}
    names = [p.name for p in save_analysis_plots(stage_like, tmp_path / "b")]
    assert names == ["background.png", "significance.png", "distribution.png"]


def test_xgamma_run_with_plots_true_writes_the_pngs(cta_datastore_dir, tmp_path, monkeypatch):
    """`plots: true` in a run configuration: the pipeline's plots stage calls save_analysis_plots."""
    from xgamma.workflow.config import validate_config
    from xgamma.workflow import run_analysis

    config = validate_config({
        "data": {"datastore": str(cta_datastore_dir), "obs_ids": [110380, 111140, 111159]},
        "geometry": {"center": {"lon": "0 deg", "lat": "0 deg", "frame": "galactic"},
                     "width": ["2.4 deg", "2 deg"], "binsz": "0.02 deg",
                     "energy": {"min": "0.1 TeV", "max": "10 TeV", "nbins": 3}},
        "maps": {"offset_max": "4 deg"},
        "psf": {"max_radius": "0.3 deg"},
        "models": [{"name": "gc",
                    "spatial": {"type": "point", "lon_0": "0.01 deg", "lat_0": "0.01 deg", "frame": "galactic"},
                    "spectral": {"type": "powerlaw2", "emin": "0.1 TeV", "emax": "10 TeV",
                                 "index": {"value": 2, "frozen": True}, "amplitude": "3e-12 cm-2 s-1"}}],
        "background_model": {"norm": {"value": 1, "frozen": True}},
        "exclusion": {"regions": ["galactic; circle(-0.05, -0.05, 0.3)"]},
        "ring": {"r_in": "0.3 deg", "width": "0.3 deg", "offset_max": "3 deg"},
        "plots": True,
    })
    import matplotlib.pyplot as plt

    from xgamma.io.fits_maps import read_maps
    from xgamma.plotting import plot_residuals
    from xgamma.plotting.position import position_figure

    with pytest.warns(DataWarning, match=COARSE_BINS):  # 3 energy bins, as in `analysis`
        analysis = run_analysis(config, output=tmp_path / "out")
    written = sorted(p.name for p in (tmp_path / "out" / "plots").iterdir())
    assert written == sorted(PLOT_FILES.values())
    for name in written:
        assert mpimg.imread(tmp_path / "out" / "plots" / name)[..., :3].std() > 0.05, name
    # Titles say what was made: energy band, correlation radius, background method and radii.
    import xgamma.plotting.files as files
    from xgamma.workflow.products import write_plots

    titles = {}

    def record(fig, path):
        titles[path.name] = [a.get_title() for a in fig.axes if hasattr(a, "coords")]
        plt.close(fig)
        return path

    monkeypatch.setattr(files, "save_figure", record)
    write_plots(analysis, tmp_path / "titles")
    assert titles["significance.png"] == ["Significance (0.1-10 TeV, r = 0.1 deg, ring 0.3-0.6 deg)"]
    assert titles["excess.png"] == ["Excess (0.1-10 TeV, r = 0.1 deg, ring 0.3-0.6 deg)"]
    assert titles["counts.png"] == ["Counts (0.1-10 TeV, smoothed 0.04 deg)"]
    # The residual significance is correlated like the significance map (product and plot).
    residuals = read_maps(tmp_path / "out" / "residuals.fits")
    assert analysis.residuals["residual_significance"].attrs["correlation_radius"] == "0.1 deg"
    fig = plot_residuals(analysis.residuals)
    wcs_axes = [a for a in fig.axes if hasattr(a, "coords")]
    assert wcs_axes[1].get_title() == "Residual significance (correlated, r = 0.1 deg)"
    assert np.nanstd(residuals["residual_significance"].values) > 0
    plt.close("all")
    # The source-position cutout has a few labelled ticks per axis and its legend below the image.
    fig = position_figure(analysis.images["counts"], analysis.fit_result, "gc")
    ax = fig.axes[0]
    fig.canvas.draw()
    for coordinate in (ax.coords[0], ax.coords[1]):
        assert len([t for t in coordinate.ticklabels.text.get(coordinate.ticklabels.get_visible_axes()[0], [])
                    if t]) >= 3
    assert ax.get_legend().get_window_extent().y1 < ax.get_window_extent().y0
    plt.close("all")
