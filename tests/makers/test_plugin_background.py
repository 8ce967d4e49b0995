"""A background IRF from a plugin is called as the built-in ones: map making asks it for a run's safe
bins only (``integrate_energy(bins=)``), and one written to the contract before ``bins`` still works."""

from __future__ import annotations

import astropy.units as u
import dask
import numpy as np
import pytest

from xgamma.geometry import SkyGeometry, energy_edges
from xgamma.io.datastore import DataStore
from xgamma.irf.background import Background2D, Background3D, integrate_background
from xgamma.makers import make_maps
from xgamma.plugin import IRFReaderEntry, hookimpl, refresh_plugins, register_plugin

#: Spectral index, rate at 1 TeV (s-1 TeV-1 sr-1) and FoV width (deg) of the plugin's model.
INDEX, NORM, SIGMA = 2.7, 3e-3, 1.2


def _rate(energy_edges, fov_lon, fov_lat) -> u.Quantity:
    """NORM E^-INDEX exp(-r^2 / 2 SIGMA^2) integrated over each bin: each bin from its own edges only."""
    edges = u.Quantity(energy_edges, "TeV").value
    lon, lat = np.broadcast_arrays(u.Quantity(fov_lon, "deg").value, u.Quantity(fov_lat, "deg").value)
    e0, e1 = edges[:-1], edges[1:]
    spectral = NORM * (e1 ** (1 - INDEX) - e0 ** (1 - INDEX)) / (1 - INDEX)
    spatial = np.exp(-(lon**2 + lat**2) / (2 * SIGMA**2))
    return u.Quantity(spectral.reshape((-1,) + (1,) * lon.ndim) * spatial, "s-1 sr-1")


class BinsBackground:
    """A plugin's background to the current contract: ``integrate_energy`` takes ``bins`` and records it."""

    fov_alignment = "RADEC"
    asked: list = []

    def __init__(self, path, hdu):
        self.source = (path, hdu)

    def integrate_energy(self, energy_edges, fov_lon, fov_lat, *, bins=None):
        self.asked.append(bins)
        edges = u.Quantity(energy_edges, "TeV")
        start, stop, _ = (bins or slice(None)).indices(edges.size - 1)
        shape = (edges.size - 1,) + np.broadcast(fov_lon, fov_lat).shape
        out = u.Quantity(np.zeros(shape), "s-1 sr-1")
        out[start:stop] = _rate(edges[start:stop + 1], fov_lon, fov_lat)
        return out


class WholeAxisBackground(BinsBackground):
    """The same model written to the contract before ``bins``: every bin, every call."""

    asked: list = []

    def integrate_energy(self, energy_edges, fov_lon, fov_lat):
        self.asked.append("all")
        return _rate(energy_edges, fov_lon, fov_lat)


class WrappedBackground:
    """A plugin's background that is none of xgamma's classes: a built-in table behind a wrapper (here
    ALTAZ-aligned)."""

    def __init__(self, inner):
        self.inner = inner
        self.fov_alignment = inner.fov_alignment

    def integrate_energy(self, *args, **kwargs):
        return self.inner.integrate_energy(*args, **kwargs)


def _altaz_table(path, hdu) -> Background3D:
    table = Background3D.read(path, hdu)
    table.fov_alignment = "ALTAZ"
    return table


class _Plugin:
    @hookimpl
    def xgamma_irf_readers(self):
        yield IRFReaderEntry(hdu_class="bkg_test_bins", reader=BinsBackground)
        yield IRFReaderEntry(hdu_class="bkg_test_whole", reader=WholeAxisBackground)
        yield IRFReaderEntry(hdu_class="bkg_test_altaz", reader=_altaz_table)
        yield IRFReaderEntry(hdu_class="bkg_test_wrapped_altaz", reader=lambda p, h: WrappedBackground(_altaz_table(p, h)))


@pytest.fixture
def stores_with_bkg_class(tmp_path):
    """``stores_with_bkg_class(store_dir, hdu_classes)``: {class: DataStore} of ``store_dir``'s runs,
    their background HDU read by the reader of each class (the test plugin registered)."""
    register_plugin(_Plugin(), name="test-backgrounds")
    BinsBackground.asked.clear()
    WholeAxisBackground.asked.clear()

    def stores(store_dir, hdu_classes):
        source = DataStore(store_dir)
        out = {}
        for hdu_class in hdu_classes:
            index = source.hdu_table.copy()
            index["FILE_DIR"] = [str((source.base_dir / str(d)).resolve()) for d in index["FILE_DIR"]]
            index["HDU_CLASS"] = [hdu_class if str(t).strip() == "bkg" else c
                                  for t, c in zip(index["HDU_TYPE"], index["HDU_CLASS"])]
            (tmp_path / hdu_class).mkdir()
            index.write(tmp_path / hdu_class / "hdu-index.fits.gz")
            source.obs_table.write(tmp_path / hdu_class / "obs-index.fits.gz")
            out[hdu_class] = DataStore(tmp_path / hdu_class)
        return out

    yield stores
    refresh_plugins()


@pytest.fixture
def plugin_stores(flat_store_dir, stores_with_bkg_class):
    """The flat store twice, its background HDU read by each of the plugin's classes."""
    return stores_with_bkg_class(flat_store_dir, ("bkg_test_bins", "bkg_test_whole"))


def test_plugin_background_is_asked_for_the_safe_bins_only(plugin_stores):
    # Safe range 0.5-50 TeV (the flat store's aeff thresholds): bins 2, 3, 4 of 0.1-100 TeV (6 bins).
    geometry = SkyGeometry.create((83.63, 22.51), width=3 * u.deg, binsz=0.1 * u.deg, frame="icrs",
                                  projection="TAN", energy_edges=energy_edges(0.1 * u.TeV, 100 * u.TeV, 6))
    maps = {}
    with dask.config.set(scheduler="synchronous"):
        for hdu_class, store in plugin_stores.items():
            maps[hdu_class] = make_maps(store.observations(), geometry, offset_max=1.4 * u.deg,
                                        safe_energy="aeff-default", chunks=(16, 16)).compute()
    assert BinsBackground.asked and all(asked == slice(2, 5) for asked in BinsBackground.asked)
    assert WholeAxisBackground.asked and set(WholeAxisBackground.asked) == {"all"}
    bins, whole = maps["bkg_test_bins"], maps["bkg_test_whole"]
    for name in ("counts", "exposure", "background"):
        np.testing.assert_array_equal(bins[name].values, whole[name].values)
    totals = bins.background.values.sum(axis=(1, 2), dtype=float)
    assert np.all(totals[[0, 1, 5]] == 0) and np.all(totals[2:5] > 0)
    # The plugin's model itself: summed over the map, the background of a bin goes as its spectral
    # integral (rtol 1e-6: the maps are float32).
    spectral = _rate(geometry.energy_edges, 0.0, 0.0).value
    np.testing.assert_allclose(totals[2:5] / totals[2], spectral[2:5] / spectral[2], rtol=1e-6)


def test_integrate_background_same_values_for_either_contract():
    edges = energy_edges(0.1 * u.TeV, 100 * u.TeV, 6)
    lon, lat = np.linspace(-2, 2, 7), np.linspace(-1, 1, 7)
    with_bins, whole = BinsBackground("f", "h"), WholeAxisBackground("f", "h")
    whole.asked.clear()
    for bins in (slice(2, 5), slice(0, 6), slice(3, 4), None):
        got = integrate_background(with_bins, edges, lon, lat, bins=bins)
        expected = integrate_background(whole, edges, lon, lat, bins=bins)
        assert got.unit == expected.unit
        np.testing.assert_array_equal(got.value, expected.value)
        outside = np.ones(6, dtype=bool)
        outside[bins or slice(0, 6)] = False
        assert np.all(got.value[outside] == 0) and np.all(got.value[~outside] > 0)
    assert WholeAxisBackground.asked.count("all") == 4  # asked for every bin, and no `bins` keyword

    class Delegating:  # takes any keyword (a wrapper passing them on): it is given ``bins``
        fov_alignment = "RADEC"

        def integrate_energy(self, *args, **kwargs):
            return with_bins.integrate_energy(*args, **kwargs)

    with_bins.asked.clear()
    integrate_background(Delegating(), edges, lon, lat, bins=slice(1, 2))
    assert with_bins.asked == [slice(1, 2)]
    from xgamma.irf.background import _takes_bins

    assert _takes_bins(Background3D) and _takes_bins(Background2D) and not _takes_bins(WholeAxisBackground)


def test_plugin_background_aligned_with_altaz_is_evaluated_in_altaz(cta_datastore_dir, stores_with_bkg_class):
    """A plugin's ALTAZ-aligned background goes through the ALTAZ path of map making as the built-in one
    does: the same maps, bit for bit, and not those of the RADEC alignment (the CTA table is not radial)."""
    stores = stores_with_bkg_class(cta_datastore_dir, ("bkg_test_altaz", "bkg_test_wrapped_altaz", "bkg_3d"))
    geometry = SkyGeometry.create((0.0, 0.0), width=(1.6 * u.deg, 1.2 * u.deg), binsz=0.1 * u.deg, frame="galactic",
                                  energy_edges=energy_edges(0.1 * u.TeV, 100 * u.TeV, 3))
    background = {}
    with dask.config.set(scheduler="synchronous"):
        for hdu_class, store in stores.items():
            observations = store.observations()[:1]
            assert isinstance(observations[0].bkg, WrappedBackground) == (hdu_class == "bkg_test_wrapped_altaz")
            maps = make_maps(observations, geometry, offset_max=2.5 * u.deg, safe_energy="aeff-max").compute()
            background[hdu_class] = maps.background.values
    np.testing.assert_array_equal(background["bkg_test_wrapped_altaz"], background["bkg_test_altaz"])
    assert background["bkg_test_altaz"].sum() > 0
    assert not np.allclose(background["bkg_test_altaz"], background["bkg_3d"], rtol=1e-3)
