"""The validation matrix of issue 10: what each cell analyses, and its xgamma configuration.

A cell is one combination of

* ``data``: ``cta-gc`` (CTA 1DC, 3 Galactic Centre runs), ``hess-crab`` (H.E.S.S. DR1, 4 Crab runs),
  ``hess-pks2155`` (H.E.S.S. DR1, 4 PKS 2155-304 runs);
* ``safe``: ``off``, ``aeff-default``, ``aeff-max`` (10 % of the maximum effective area);
* ``fit``: ``images`` (counts summed over energy, each source predicted per bin: Gammapy's
  ``to_image``), ``cube`` (no energy dispersion: true axis = reco axis), ``cube-edisp``
  (exposure in true energy, migration kernels);
* ``norm``: the background norm ``frozen`` or ``free``;
* ``geom``: ``car-galactic`` or ``tan-icrs`` (the map, the source model and the exclusion
  region are all written in that frame).

Both codes analyse the same runs on the same pixels and energy axes with the same start values;
the Gammapy side is `gammapy_reference`. Sizes are chosen to keep a cell's Gammapy run to
seconds: 0.02 deg pixels, 3 x 3 deg (H.E.S.S.) or 4 x 4 deg (CTA), 10 reco bins 0.1-10 TeV,
20 true bins 0.05-20 TeV for energy dispersion.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

from astropy.coordinates import SkyCoord

DATA = ("cta-gc", "hess-crab", "hess-pks2155")
SAFE = ("off", "aeff-default", "aeff-max")
FIT = ("images", "cube", "cube-edisp")
NORM = ("frozen", "free")
GEOM = ("car-galactic", "tan-icrs")

RECO = {"min": "0.1 TeV", "max": "10 TeV", "nbins": 10}
TRUE = {"min": "0.05 TeV", "max": "20 TeV", "nbins": 20}
BINSZ = 0.02  # deg
AEFF_PERCENT = 10
#: Spectral model of every cell: PowerLaw2 over FLUX_BAND (TeV), amplitude in cm-2 s-1.
FLUX_BAND = (1.0, 10.0)
RING = {"r_in": 0.3, "width": 0.3}  # deg
CORRELATION_RADIUS = 0.1  # deg
EXCLUSION_RADIUS = 0.3  # deg


@dataclass(frozen=True)
class Target:
    """Runs, map centre and the source of one data set."""

    store: str  # relative to $XGAMMA_DATA
    obs_ids: tuple[int, ...]
    center: SkyCoord  # map centre
    source: SkyCoord  # the point source (start values are 0.01 deg away)
    width: float  # deg, square maps
    offset_max: float  # deg
    index: float  # start (and frozen value for image fits) of the power-law index
    amplitude: float  # start amplitude (cm-2 s-1, 1-10 TeV)


TARGETS = {
    "cta-gc": Target("cta-1dc/index/gps", (110380, 111140, 111159), SkyCoord(0, 0, unit="deg", frame="galactic"),
                     SkyCoord(359.9442, -0.0462, unit="deg", frame="galactic"), 4.0, 4.0, 2.3, 2e-13),
    "hess-crab": Target("hess-dl3-dr1", (23523, 23526, 23559, 23592), SkyCoord(83.633, 22.014, unit="deg"),
                        SkyCoord(83.633, 22.014, unit="deg"), 3.0, 2.5, 2.6, 2e-11),
    "hess-pks2155": Target("hess-dl3-dr1", (33787, 33788, 33789, 33790), SkyCoord(329.717, -30.226, unit="deg"),
                           SkyCoord(329.717, -30.226, unit="deg"), 3.0, 2.5, 3.3, 5e-12),
}


@dataclass(frozen=True)
class Cell:
    data: str
    safe: str
    fit: str
    norm: str
    geom: str

    @property
    def id(self) -> str:
        return "-".join((self.data, self.safe, self.fit, self.norm, self.geom))

    @property
    def target(self) -> Target:
        return TARGETS[self.data]

    @property
    def frame(self) -> str:
        return "galactic" if self.geom == "car-galactic" else "icrs"

    @property
    def projection(self) -> str:
        return self.geom.split("-")[0].upper()

    @property
    def edisp(self) -> bool:
        return self.fit == "cube-edisp"

    @property
    def maps_key(self) -> tuple[str, str, str, bool]:
        """Cells with the same key share their maps (both codes)."""
        return (self.data, self.safe, self.geom, self.edisp)

    @property
    def significance_key(self) -> tuple[str, str, str]:
        """The significance maps depend on the data, safe range and geometry only."""
        return (self.data, self.safe, self.geom)


ALL_CELLS = tuple(Cell(*c) for c in itertools.product(DATA, SAFE, FIT, NORM, GEOM))

#: Cells run by plain ``python -m pytest``: every value of every axis appears at least once
#: (one cell per row and column of the matrix), with the three data sets on distinct safe ranges
#: and fit modes, and both norms and projections on both kinds of data.
CI_CELLS = (
    Cell("cta-gc", "off", "images", "free", "car-galactic"),
    Cell("hess-crab", "aeff-default", "cube-edisp", "frozen", "tan-icrs"),
    Cell("hess-pks2155", "aeff-max", "cube", "free", "tan-icrs"),
    Cell("hess-crab", "aeff-max", "images", "frozen", "car-galactic"),
)


def lonlat(position: SkyCoord, frame: str) -> tuple[float, float]:
    """Longitude and latitude (deg) of ``position`` in ``frame``, longitude in the frame's usual range."""
    sph = position.transform_to(frame).spherical
    lon = sph.lon.wrap_at("180d" if frame == "galactic" else "360d").deg
    return float(lon), float(sph.lat.deg)


def start_position(cell: Cell) -> tuple[float, float]:
    lon, lat = lonlat(cell.target.source, cell.frame)
    return lon + 0.01, lat + 0.01


#: The start of each `xgamma.exceptions.DataWarning` a cell's xgamma run may give, by its cause.
WARNINGS = {
    # xgamma.fit.edisp_check: the migration at the true bins' centres moves 1.9 % of the counts.
    "true-axis": "geometry.energy_true: the true-energy axis",
    # xgamma.fit.exposure_check: the exposure at the reco bins' centres is 6.3 % off.
    "bin-centre-exposure": "geometry.energy: at source 'source' the exposure taken at the centres",
}


def expected_warnings(cell: Cell) -> set[str]:
    """The `WARNINGS` a cell's xgamma run gives (measured: docs/validation.md)."""
    out = set()
    if cell.data == "cta-gc" and cell.edisp:
        out.add("true-axis")
    if cell.data == "hess-pks2155" and cell.safe == "off" and not cell.edisp:
        out.add("bin-centre-exposure")
    return out


def safe_section(cell: Cell):
    if cell.safe == "off":
        return None
    if cell.safe == "aeff-max":
        return {"methods": ["aeff-max"], "aeff_percent": AEFF_PERCENT}
    return cell.safe


def _position(coord: SkyCoord, frame: str) -> dict:
    lon, lat = lonlat(coord, frame)
    return {"lon": f"{lon} deg", "lat": f"{lat} deg", "frame": frame}


def xgamma_config(cell: Cell, data_dir: Path, *, fit: bool = True, significance: bool = False) -> dict:
    """The `xgamma.workflow.run_analysis` configuration of a cell.

    ``fit`` adds the model and the fit (bilinear point sources, as Gammapy), ``significance``
    the exclusion, ring and correlated significance.
    """
    t = cell.target
    config = {
        "data": {"datastore": str(data_dir / t.store), "obs_ids": list(t.obs_ids)},
        "geometry": {"center": _position(t.center, cell.frame), "width": f"{t.width} deg", "binsz": f"{BINSZ} deg",
                     "projection": cell.projection, "energy": dict(RECO)},
        "maps": {"offset_max": f"{t.offset_max} deg", "safe_energy": safe_section(cell)},
    }
    if cell.edisp:
        config["geometry"]["energy_true"] = dict(TRUE)
    if fit:
        lon, lat = start_position(cell)
        config["models"] = [{
            "name": "source",
            "spatial": {"type": "point", "lon_0": f"{lon} deg", "lat_0": f"{lat} deg", "frame": cell.frame},
            "spectral": {"type": "powerlaw2", "emin": f"{FLUX_BAND[0]} TeV", "emax": f"{FLUX_BAND[1]} TeV",
                         "index": {"value": t.index, "frozen": cell.fit == "images"},
                         "amplitude": f"{t.amplitude} cm-2 s-1"},
        }]
        config["background_model"] = {"norm": {"value": 1, "frozen": cell.norm == "frozen"},
                                      "tilt": {"value": 0, "frozen": True}}
        config["fit"] = {"on": "images" if cell.fit == "images" else "cube", "edisp": cell.edisp,
                         "point_method": "bilinear"}
    if significance:
        lon, lat = lonlat(t.source, cell.frame)
        frame = "galactic" if cell.frame == "galactic" else "icrs"
        config["exclusion"] = {"regions": [f"{frame}; circle({lon}, {lat}, {EXCLUSION_RADIUS})"]}
        config["ring"] = {"r_in": f"{RING['r_in']} deg", "width": f"{RING['width']} deg",
                          "offset_max": f"{t.offset_max} deg"}
        config["significance"] = {"correlation_radius": f"{CORRELATION_RADIUS} deg"}
    return config
