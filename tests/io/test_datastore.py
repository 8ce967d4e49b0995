"""DataStore / Observation on the CTA 1DC and H.E.S.S. DR1 stores; errors on broken copies.

Broken stores are built in ``tmp_path`` from the real index tables (rewritten with astropy,
pointing at the real data files by absolute path), never committed.
"""

from __future__ import annotations

import io
import pickle
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table

from xgamma.exceptions import DataStoreError, IRFError
from xgamma.io.datastore import DataStore, Observation
from xgamma.io.events import EventList

CTA_IDS = [110380, 111140, 111159, 111630]
CRAB = SkyCoord(83.63308, 22.01450, unit="deg")


@pytest.fixture(scope="module")
def cta(cta_datastore_dir) -> DataStore:
    return DataStore(cta_datastore_dir)


@pytest.fixture(scope="module")
def hess(hess_datastore_dir) -> DataStore:
    return DataStore(hess_datastore_dir)


def _absolute_index_copy(store: DataStore, dst: Path, *, edit=None, drop_obs_index=False) -> Path:
    """Write the store's index tables into ``dst`` with absolute FILE_DIRs (optionally edited)."""
    dst.mkdir(parents=True, exist_ok=True)
    hdu = store.hdu_table.copy()
    hdu["FILE_DIR"] = [str((store.base_dir / str(d)).resolve()) for d in hdu["FILE_DIR"]]
    if edit is not None:
        edit(hdu)
    hdu.write(dst / "hdu-index.fits.gz")
    if not drop_obs_index:
        store.obs_table.write(dst / "obs-index.fits.gz")
    return dst


# -- loading ------------------------------------------------------------------------------


def test_cta_store_lists_observations(cta):
    assert cta.obs_ids == CTA_IDS
    obs = cta.observation(110380)
    assert set(obs.hdus) == {"events", "gti", "aeff", "edisp", "psf", "bkg"}
    assert obs.hdus["bkg"][2] == "bkg_3d"
    assert obs.hdus["psf"][2] == "psf_3gauss"
    # Paths resolve relative to the index directory (FILE_DIR = ../../data/...).
    assert all(Path(path).is_file() for path, _, _ in obs.hdus.values())


def test_hess_obs_table_all_105_runs(hess):
    assert len(hess.obs_table) == 105
    assert len(set(hess.obs_ids)) == 105
    for obs in hess.observations():
        assert set(obs.hdus) == {"events", "gti", "aeff", "edisp", "psf", "bkg"}, obs.obs_id
        assert obs.hdus["psf"][2] == "psf_table"
        # Dead-time bookkeeping: livetime = ontime x DEADC (to float32 precision of the table).
        np.testing.assert_allclose(obs.livetime.to_value("s"), obs.ontime.to_value("s") * obs.deadc, rtol=1e-5)
        assert 0 < obs.livetime <= obs.ontime


def test_observation_header_values(cta, hess):
    obs = cta.observation(110380)
    row = cta.obs_table[0]
    assert obs.pointing.ra.deg == pytest.approx(float(row["RA_PNT"]))
    assert obs.pointing.dec.deg == pytest.approx(float(row["DEC_PNT"]))
    assert obs.ontime == 1800 * u.s and obs.livetime == 1764 * u.s  # ONTIME, LIVETIME columns
    # CTA 1DC: no location in the obs index; it comes from the events header.
    with fits.open(obs.hdus["events"][0]) as h:
        header = h["EVENTS"].header
        assert obs.location.lat.deg == pytest.approx(header["GEOLAT"])
        assert obs.location.lon.deg == pytest.approx(header["GEOLON"])
        # TSTART in MET seconds after MJDREF (TT).
        mjd = header["MJDREFI"] + header["MJDREFF"] + float(row["TSTART"]) / 86400.0
        assert obs.tstart.tt.mjd == pytest.approx(mjd, abs=1e-9)
    assert obs.tstop > obs.tstart
    # H.E.S.S.: location in the obs-index header as strings.
    assert hess.observation(23523).location.lat.deg == pytest.approx(-23.2717777777778)


def test_events_columns(cta):
    obs = cta.observation(110380)
    events = obs.events
    assert isinstance(events, EventList)
    assert len(events) == int(cta.obs_table["EVENT_COUNT"][0])
    assert events.ra.dtype == np.float32 and events.dec.dtype == np.float32  # kept as stored
    assert events.energy.min() > 0.02 and events.energy.max() < 200  # TeV (DSVAL2 = 0.03:160)
    assert obs.gti.time_sum == 1800 * u.s
    assert events.meta["OBS_ID"] == 110380


def test_energy_converted_from_column_unit(cta, tmp_path):
    """An events file with ENERGY in GeV gives the same TeV energies."""
    src = cta.observation(110380).hdus["events"][0]
    with fits.open(src) as hdul:
        table = Table.read(hdul["EVENTS"])
        gti = fits.BinTableHDU(Table.read(hdul["GTI"]), name="GTI")
    table["ENERGY"] = table["ENERGY"].to("GeV")
    fits.HDUList([fits.PrimaryHDU(), fits.table_to_hdu(table), gti]).writeto(tmp_path / "ev.fits")
    from xgamma.io.events import read_events

    events = read_events(tmp_path / "ev.fits", "EVENTS")
    np.testing.assert_allclose(events.energy, cta.observation(110380).events.energy, rtol=1e-6)


def test_lazy_and_picklable(cta):
    obs = cta.observation(111140)
    assert obs._cache == {}  # nothing read on construction
    payload = pickle.dumps(obs)
    assert len(payload) < 4000
    _ = obs.events, obs.aeff
    assert {"events", "aeff"} <= set(obs._cache)
    # Caches stay behind: the pickle is as small after loading.
    assert len(pickle.dumps(obs)) == len(payload)
    clone = pickle.loads(payload)
    assert isinstance(clone, Observation) and clone._cache == {}
    np.testing.assert_array_equal(clone.events.ra, obs.events.ra)


def test_load_all(cta):
    obs = cta.observation(111159).load_all()
    assert set(obs._cache) >= {"events", "gti", "aeff", "bkg", "psf", "edisp"}


# -- selection ------------------------------------------------------------------------------


def test_select_obs_ids_keeps_both_tables_consistent(hess):
    sub = hess.select(obs_ids=[23523, 23526])
    assert sub.obs_ids == [23523, 23526]
    assert set(np.asarray(sub.hdu_table["OBS_ID"])) == {23523, 23526}
    assert len(sub.hdu_table) == 12
    assert len(hess) == 105  # parent untouched


def test_select_cone_and_object(hess):
    radius = 2 * u.deg
    sub = hess.select(cone=(CRAB, radius))
    pnt = SkyCoord(hess.obs_table["RA_PNT"], hess.obs_table["DEC_PNT"])
    expected = sorted(np.asarray(hess.obs_table["OBS_ID"])[pnt.separation(CRAB) < radius].tolist())
    assert sorted(sub.obs_ids) == expected and len(expected) > 0
    by_name = hess.select(object_name="crab nebula")  # case-insensitive
    assert sorted(by_name.obs_ids) == [23523, 23526, 23559, 23592]
    both = hess.select(cone=(CRAB, "2 deg"), object_name="Crab Nebula")
    assert set(both.obs_ids) == set(expected) & {23523, 23526, 23559, 23592}


# -- cross-check with Gammapy ---------------------------------------------------------------


@pytest.mark.gammapy
def test_matches_gammapy_datastore(hess_datastore_dir, cta_datastore_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from gammapy.data import DataStore as GammapyDataStore

    for path, obs_id in [(hess_datastore_dir, 23523), (cta_datastore_dir, 110380)]:
        g = GammapyDataStore.from_dir(path).obs(obs_id)
        x = DataStore(path).observation(obs_id)
        table = g.events.table
        # Identical event columns (same float32 values).
        np.testing.assert_array_equal(x.events.ra, np.asarray(table["RA"]))
        np.testing.assert_array_equal(x.events.dec, np.asarray(table["DEC"]))
        np.testing.assert_allclose(x.events.energy, table["ENERGY"].quantity.to_value("TeV"), rtol=1e-7)
        from xgamma.io.events import met_to_time, time_reference

        times = met_to_time(x.events.time, time_reference(x.events.meta))
        assert np.max(np.abs((times - table["TIME"]).to_value("s"))) < 1e-5
        # Gammapy sums the GTIs; ONTIME agrees to rounding (1e-9 relative).
        np.testing.assert_allclose(x.ontime.to_value("s"), g.observation_time_duration.to_value("s"), rtol=1e-9)
        np.testing.assert_allclose(x.livetime.to_value("s"), g.observation_live_time_duration.to_value("s"), rtol=1e-7)
        assert abs((x.tstart - g.tstart).to_value("s")) < 1e-3
        # Obs-index RA_PNT is float32: within 1e-5 deg of the header value Gammapy uses.
        assert x.pointing.separation(g.pointing.fixed_icrs).deg < 1e-5
        assert x.location.lat.deg == pytest.approx(g.observatory_earth_location.lat.deg, abs=1e-9)


# -- errors ----------------------------------------------------------------------------------


def test_missing_directory(tmp_path):
    with pytest.raises(DataStoreError, match="data store directory not found: .*nowhere"):
        DataStore(tmp_path / "nowhere")


def test_missing_obs_index(cta, tmp_path):
    path = _absolute_index_copy(cta, tmp_path / "store", drop_obs_index=True)
    with pytest.raises(DataStoreError, match=r"obs index file not found: .*obs-index\.fits"):
        DataStore(path)


def test_missing_hdu_index(tmp_path):
    (tmp_path / "obs-index.fits").write_bytes(b"")
    with pytest.raises(DataStoreError, match=r"hdu index file not found: .*hdu-index\.fits"):
        DataStore(tmp_path)


def test_unknown_obs_id(cta):
    with pytest.raises(DataStoreError, match="unknown obs id 42 "):
        cta.observation(42)
    with pytest.raises(DataStoreError, match=r"unknown obs id\(s\) \[1, 2\]"):
        cta.select(obs_ids=[110380, 1, 2])


def test_empty_selection(hess):
    with pytest.raises(DataStoreError, match="object_name='Vela X' matches no observation"):
        hess.select(object_name="Vela X")
    with pytest.raises(DataStoreError, match="cone=.* matches no observation"):
        hess.select(cone=(SkyCoord(0, 89, unit="deg"), 1 * u.deg))


def test_missing_data_file(cta, tmp_path):
    def edit(t):
        t["FILE_NAME"][t["HDU_TYPE"] == "events"] = "missing_events.fits"

    store = DataStore(_absolute_index_copy(cta, tmp_path / "store", edit=edit))
    obs = store.observation(110380)
    with pytest.raises(DataStoreError, match="FITS file not found: .*missing_events.fits"):
        obs.events


def test_missing_hdu_in_file(cta, tmp_path):
    def edit(t):
        t["HDU_NAME"][(t["HDU_TYPE"] == "aeff") & (t["OBS_ID"] == 110380)] = "NO SUCH HDU"

    obs = DataStore(_absolute_index_copy(cta, tmp_path / "store", edit=edit)).observation(110380)
    with pytest.raises(IRFError, match="HDU 'NO SUCH HDU' not found in .*irf_file.fits"):
        obs.aeff


def test_hdu_type_not_in_index(cta, tmp_path):
    def edit(t):
        t.remove_rows(np.nonzero(np.asarray(t["HDU_TYPE"]) == "psf")[0])

    obs = DataStore(_absolute_index_copy(cta, tmp_path / "store", edit=edit)).observation(110380)
    with pytest.raises(DataStoreError, match="obs 110380 has no 'psf' HDU in the HDU index"):
        obs.psf


def test_table_columns_read_from_bytes_as_astropy_reads_them(hess, tmp_path):
    """`read_table_columns` reads plain scalar columns from the file's bytes (the events of a run), and
    leaves scaled (TZERO), vector and heap columns to astropy: the same values, dtypes and units."""
    from xgamma.fits_tables import _column_layout, read_table_columns, read_table_hdu

    src = hess.observation(23523).hdus["events"][0]  # gzipped, all scalar columns
    header, (ra, energy, time) = read_table_columns(src, "EVENTS", (("RA",), ("ENERGY",), ("TIME",)))
    assert all(entry[1] is not None for entry in _column_layout(header).values())  # the bytes path was taken
    _, data = read_table_hdu(src, "EVENTS")
    for got, name in ((ra, "RA"), (energy, "ENERGY"), (time, "TIME")):
        expected = np.asarray(data[name])
        assert got.dtype == expected.dtype.newbyteorder("=") and got.dtype.isnative
        np.testing.assert_array_equal(got.value, expected)
        assert got.unit == u.Unit(data.columns[name].unit)
    # Scaled, vector and variable-length columns: not plain, read by astropy (same values).
    table = fits.BinTableHDU.from_columns([
        fits.Column("ID", "J", array=np.array([1, 2, 3]), bscale=1, bzero=2**31),
        fits.Column("VEC", "3E", unit="deg", array=np.arange(9.0).reshape(3, 3)),
        fits.Column("VAR", "PE()", array=[np.ones(1), np.ones(2), np.ones(3)]),
        fits.Column("X", "D", unit="TeV", array=np.array([0.5, 1.5, 2.5])),
    ], name="T")
    table.writeto(tmp_path / "t.fits")
    layout = _column_layout(fits.getheader(tmp_path / "t.fits", "T"))
    assert [layout[n][1] for n in ("ID", "VEC", "VAR", "X")] == [None, None, None, ">f8"]
    _, (ids, vec, x) = read_table_columns(tmp_path / "t.fits", "T", (("id",), ("VEC",), ("X",)))
    np.testing.assert_array_equal(ids.value, [1, 2, 3])  # the values written (stored with TZERO)
    assert vec.shape == (3, 3) and vec.unit == u.deg and list(x.value) == [0.5, 1.5, 2.5] and x.unit == u.TeV
    with pytest.raises(DataStoreError, match="column 'Y' missing in HDU 'T' of .*t.fits"):
        read_table_columns(tmp_path / "t.fits", "T", (("Y",),))


def test_missing_event_column(cta, tmp_path):
    src = Path(cta.observation(110380).hdus["events"][0])
    broken = tmp_path / "events.fits"
    with fits.open(src) as hdul:
        table = hdul["EVENTS"]
        cols = fits.ColDefs([c for c in table.columns if c.name != "ENERGY"])
        events = fits.BinTableHDU.from_columns(cols, header=table.header, name="EVENTS")
        fits.HDUList([fits.PrimaryHDU(), events, hdul["GTI"].copy()]).writeto(broken)

    def edit(t):
        sel = (t["HDU_TYPE"] == "events") & (t["OBS_ID"] == 110380)
        t["FILE_DIR"][sel] = str(tmp_path)
        t["FILE_NAME"][sel] = broken.name

    obs = DataStore(_absolute_index_copy(cta, tmp_path / "store", edit=edit)).observation(110380)
    with pytest.raises(DataStoreError, match="column 'ENERGY' missing in HDU 'EVENTS' of .*events.fits"):
        obs.events


def test_unknown_hdu_class(cta, tmp_path):
    def edit(t):
        t["HDU_CLASS"][t["HDU_TYPE"] == "psf"] = "psf_fancy"

    obs = DataStore(_absolute_index_copy(cta, tmp_path / "store", edit=edit)).observation(110380)
    with pytest.raises(IRFError, match=r"unknown IRF HDU class 'psf_fancy' .*known IRF readers: aeff_2d, bkg_2d"):
        obs.psf


def test_missing_index_column(cta, tmp_path):
    def edit(t):
        t.remove_column("HDU_NAME")

    with pytest.raises(DataStoreError, match=r"lacks column\(s\) \['HDU_NAME'\]"):
        DataStore(_absolute_index_copy(cta, tmp_path / "store", edit=edit))


def test_gzipped_run_file_read_once_and_truncated_file_named(hess, tmp_path):
    # A H.E.S.S. run file holds events and IRFs: its decompressed bytes are kept, so the same
    # tables come back for every HDU; a truncated gzip file gets an error naming it.
    from xgamma.fits_tables import _gunzipped, read_table_hdu

    path = Path(hess.observation(23523).hdus["events"][0])
    _gunzipped.cache_clear()
    header, events = read_table_hdu(path, "EVENTS")
    read_table_hdu(path, "AEFF")
    assert _gunzipped.cache_info().hits >= 1 and _gunzipped.cache_info().misses == 1
    with fits.open(path) as hdul:
        np.testing.assert_array_equal(events["ENERGY"], hdul["EVENTS"].data["ENERGY"])
    broken = tmp_path / "truncated.fits.gz"
    broken.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataStoreError, match="truncated.fits.gz"):
        read_table_hdu(broken, "BKG")


def test_reopened_store_sees_a_changed_index_and_tables_are_independent(cta_datastore_dir, tmp_path):
    """Index tables are parsed once per file version: a rewritten index is read again, and changing
    one store's table changes no other store's."""
    for name in ("hdu-index.fits.gz", "obs-index.fits.gz"):
        (tmp_path / name).write_bytes((cta_datastore_dir / name).read_bytes())
    first = DataStore(tmp_path)
    first.obs_table["OBS_ID"][0] = -1
    assert DataStore(tmp_path).obs_ids == DataStore(cta_datastore_dir).obs_ids
    table = Table.read(tmp_path / "obs-index.fits.gz", hdu=1)
    table[1:].write(tmp_path / "obs-index.fits.gz", overwrite=True)
    assert DataStore(tmp_path).obs_ids == DataStore(cta_datastore_dir).obs_ids[1:]


def test_plain_table_located_from_its_header_cards(hess, cta, tmp_path):
    """`read_table_columns` finds a plain binary table by name from the header cards alone (`_plain_table`,
    without astropy's HDU list): the same header and values as astropy reads, gzipped or not, past HDUs
    of other kinds; anything unusual is left to astropy, with its errors."""
    from xgamma.fits_tables import HeaderCards, _plain_table, read_table_columns, read_table_hdu

    for src in (hess.observation(23523).hdus["events"][0], cta.observation(110380).hdus["events"][0]):
        assert _plain_table(Path(src), "events") is not None  # case-insensitive, as astropy
        header, (ra, energy) = read_table_columns(src, "EVENTS", (("RA",), ("ENERGY",)))
        expected_header, data = read_table_hdu(src, "EVENTS")
        assert isinstance(header, HeaderCards) and "header" not in vars(header)  # astropy's: not parsed
        _assert_same_header(header, expected_header)
        assert str(header.header) == str(expected_header)
        np.testing.assert_array_equal(ra.value, np.asarray(data["RA"]))
        np.testing.assert_array_equal(energy.value, np.asarray(data["ENERGY"]))

    table = fits.BinTableHDU.from_columns([fits.Column("X", "D", unit="TeV", array=np.array([0.5, 1.5, 2.5]))],
                                          name="T")
    image = fits.ImageHDU(np.ones((3, 5), dtype=np.float32), name="IMG")
    fits.HDUList([fits.PrimaryHDU(np.zeros(7)), image, table]).writeto(tmp_path / "t.fits")
    assert _plain_table(tmp_path / "t.fits", "T")[0]["TTYPE1"] == "X"  # found past an image's data
    _, (x,) = read_table_columns(tmp_path / "t.fits", "T", (("X",),))
    assert list(x.value) == [0.5, 1.5, 2.5] and x.unit == u.TeV
    assert _plain_table(tmp_path / "t.fits", "IMG") is None and _plain_table(tmp_path / "t.fits", "NONE") is None
    with pytest.raises(DataStoreError, match="HDU 'NONE' not found in .*t.fits"):
        read_table_columns(tmp_path / "t.fits", "NONE", (("X",),))
    # A long string (CONTINUE cards): left to astropy, same values.
    table.header["LONGSTR"] = "a" * 100
    table.writeto(tmp_path / "long.fits")
    assert _plain_table(tmp_path / "long.fits", "T") is None
    header, (x,) = read_table_columns(tmp_path / "long.fits", "T", (("X",),))
    assert header["LONGSTR"] == "a" * 100 and list(x.value) == [0.5, 1.5, 2.5]
    # Truncated data: astropy's path names the fault.
    content = (tmp_path / "t.fits").read_bytes()
    (tmp_path / "cut.fits").write_bytes(content[:len(content) - 2880])
    assert _plain_table(tmp_path / "cut.fits", "T") is None
    with pytest.raises(DataStoreError, match="truncated|cannot read"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="File may have been truncated")
        read_table_columns(tmp_path / "cut.fits", "T", (("X",),))


def _assert_same_header(header, expected) -> None:
    """``header`` (a `HeaderCards`) gives every value of the astropy Header ``expected``, of the same type,
    under any case of the keyword, and nothing more."""
    keywords = {card.keyword for card in expected.cards}
    for keyword in keywords:
        for key in (keyword, keyword.lower()):
            assert key in header
            if keyword in ("COMMENT", "HISTORY", ""):
                assert list(header[key]) == list(expected[key])
            else:
                assert header[key] == expected[key] and type(header[key]) is type(expected[key]), keyword
                assert header.get(key) == expected.get(key)
    assert set(header) == keywords - {"COMMENT", "HISTORY", ""}
    assert "NOSUCHKEY" not in header and header.get("NOSUCHKEY", 1.5) == 1.5
    with pytest.raises(KeyError, match="NOSUCHKEY"):
        header["NOSUCHKEY"]


def test_header_cards_read_as_astropy_reads_them():
    """The header-card parser gives each value exactly as astropy's Header does (type included), or leaves
    the whole header to astropy (None) when a card is anything it does not read the same way: the events
    header it returns (`HeaderCards`) is then astropy's header without parsing it."""
    from xgamma.fits_tables import HeaderCards, _header_cards

    def header_text(*cards: str) -> str:
        return "".join(card.ljust(80) for card in ("SIMPLE  =                    T", *cards, "END")).ljust(2880)

    def parsed(*cards: str):
        return _header_cards(io.BytesIO(header_text(*cards).encode("ascii")))

    same = ["'abc   '", "'  x '' y ' / comment: with colon", "''", "'it''s'", "'a'''", "'x'/c", "1.0D3", "1.0d3",
            "007", "+5", "-0", "-0.0", ".5", "5.", "1E5", "1e-5", "T", "F / comment", "  F",
            "12345678901234567890", "-1.7976931348623157E+308"]
    for value in same:
        cards = (f"KEY     = {value}", "COMMENT text", "KEY     = 'second, ignored'")
        read = parsed(*cards)
        assert read is not None, value
        _assert_same_header(HeaderCards(*read, where="test"), fits.Header.fromstring(header_text(*cards)))
    # Read otherwise by astropy (more after a string, a record-valued keyword card, spaces inside a number,
    # complex, undefined) or not at all (nan, a truncated string...): astropy reads the header then.
    others = ["'a' b'", "'a'b'", "'DP1: 2'", "'AXIS.1: 2'", "1.5 E 3", "- 5", "(1, 2)", "", "/ undefined", "nan",
              "inf", "1_0", "5 abc", "0x10", "'unterminated", "t"]
    for value in others:
        assert parsed(f"KEY     = {value}") is None, value
    for card in ("KEY     =5", "key     = 5", "HIERARCH ESO A = 5", "KEY      5", " KEY    = 5", "KEY= 5",
                 "CONTINUE  'x'", "KEY     = 'tab\there'"):
        assert parsed(card) is None, card
    # Random value fields made of the characters that matter: every one the parser reads, astropy reads alike.
    rng = np.random.default_rng(1)
    accepted = 0
    for _ in range(3000):
        value = "".join(rng.choice(list("'' /:.+-0123456789EDedTFa "), size=rng.integers(0, 13)))
        read = parsed(f"KEY     = {value}")
        if read is not None:
            accepted += 1
            expected = fits.Header.fromstring(header_text(f"KEY     = {value}"))["KEY"]
            assert read[0]["KEY"] == expected and type(read[0]["KEY"]) is type(expected), value
    assert accepted > 100
