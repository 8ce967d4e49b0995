"""Write a tiny GADF data store with flat IRFs (constant effective area and background rate).

With flat IRFs the expected maps are analytic: exposure = A x livetime and
background = rate x (E_max - E_min) x pixel solid angle x ontime, inside offset_max.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

AREA_M2 = 1.0e5
RATE = 2.0e-6  # s-1 MeV-1 sr-1
LIVETIME = 1600.0
ONTIME = 1800.0
POINTING = (83.63, 22.51)  # RA, Dec in deg


def _irf_table(columns: dict, name: str, header: dict) -> fits.BinTableHDU:
    cols = [
        fits.Column(name=key, format=f"{np.size(value)}E", unit=unit, array=[np.ravel(value, order="C")],
                    dim=None if np.ndim(value) < 2 else str(tuple(reversed(np.shape(value)))).replace(" ", ""))
        for key, (value, unit) in columns.items()
    ]
    hdu = fits.BinTableHDU.from_columns(cols, name=name)
    hdu.header.update(header)
    return hdu


def write_flat_store(path: Path, *, n_events: int = 2000, seed: int = 1) -> Path:
    """Write the store into ``path`` (created); returns ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    energy = np.logspace(-2, 2, 41)
    theta = np.linspace(0, 6, 7)
    det = np.linspace(-6, 6, 25)
    aeff = _irf_table(
        {
            "ENERG_LO": (energy[:-1], "TeV"), "ENERG_HI": (energy[1:], "TeV"),
            "THETA_LO": (theta[:-1], "deg"), "THETA_HI": (theta[1:], "deg"),
            "EFFAREA": (np.full((theta.size - 1, energy.size - 1), AREA_M2), "m2"),
        },
        "EFFECTIVE AREA",
        {"HDUCLASS": "GADF", "HDUCLAS1": "RESPONSE", "HDUCLAS2": "EFF_AREA", "HDUCLAS3": "FULL-ENCLOSURE",
         "HDUCLAS4": "AEFF_2D", "LO_THRES": 0.5, "HI_THRES": 50.0},
    )
    bkg = _irf_table(
        {
            "ENERG_LO": (energy[:-1], "TeV"), "ENERG_HI": (energy[1:], "TeV"),
            "DETX_LO": (det[:-1], "deg"), "DETX_HI": (det[1:], "deg"),
            "DETY_LO": (det[:-1], "deg"), "DETY_HI": (det[1:], "deg"),
            "BKG": (np.full((energy.size - 1, det.size - 1, det.size - 1), RATE), "s-1 MeV-1 sr-1"),
        },
        "BACKGROUND",
        {"HDUCLASS": "GADF", "HDUCLAS1": "RESPONSE", "HDUCLAS2": "BKG", "HDUCLAS3": "FULL-ENCLOSURE",
         "HDUCLAS4": "BKG_3D", "FOVALIGN": "RADEC"},
    )
    ra = POINTING[0] + rng.uniform(-2, 2, n_events) / np.cos(np.radians(POINTING[1]))
    dec = POINTING[1] + rng.uniform(-2, 2, n_events)
    events = fits.BinTableHDU(
        Table({"EVENT_ID": np.arange(n_events), "TIME": np.sort(rng.uniform(0, ONTIME, n_events)),
               "RA": ra.astype(np.float32), "DEC": dec.astype(np.float32),
               "ENERGY": (10 ** rng.uniform(-1, 1, n_events)).astype(np.float32)},
              units={"TIME": "s", "RA": "deg", "DEC": "deg", "ENERGY": "TeV"}),
        name="EVENTS",
    )
    events.header.update({
        "HDUCLASS": "GADF", "HDUCLAS1": "EVENTS", "OBS_ID": 1, "RA_PNT": POINTING[0], "DEC_PNT": POINTING[1],
        "ONTIME": ONTIME, "LIVETIME": LIVETIME, "DEADC": LIVETIME / ONTIME, "TSTART": 0.0, "TSTOP": ONTIME,
        "MJDREFI": 51910, "MJDREFF": 7.428703703703703e-4, "TIMEUNIT": "s", "TIMESYS": "TT", "TIMEREF": "LOCAL",
    })
    gti = fits.BinTableHDU(Table({"START": [0.0], "STOP": [ONTIME]}, units={"START": "s", "STOP": "s"}), name="GTI")
    gti.header.update({"HDUCLASS": "GADF", "HDUCLAS1": "GTI", "MJDREFI": 51910, "MJDREFF": 7.428703703703703e-4,
                       "TIMEUNIT": "s", "TIMESYS": "TT", "TIMEREF": "LOCAL"})
    fits.HDUList([fits.PrimaryHDU(), events, gti, aeff, bkg]).writeto(path / "run_000001.fits", overwrite=True)

    hdu_rows = [(1, kind, cls, ".", "run_000001.fits", name) for kind, cls, name in
                [("events", "events", "EVENTS"), ("gti", "gti", "GTI"),
                 ("aeff", "aeff_2d", "EFFECTIVE AREA"), ("bkg", "bkg_3d", "BACKGROUND")]]
    Table(rows=hdu_rows, names=["OBS_ID", "HDU_TYPE", "HDU_CLASS", "FILE_DIR", "FILE_NAME", "HDU_NAME"]).write(
        path / "hdu-index.fits.gz", overwrite=True)
    obs = Table({"OBS_ID": [1], "RA_PNT": [POINTING[0]], "DEC_PNT": [POINTING[1]], "ONTIME": [ONTIME],
                 "LIVETIME": [LIVETIME], "DEADC": [LIVETIME / ONTIME], "TSTART": [0.0], "TSTOP": [ONTIME],
                 "OBJECT": ["flat"]})
    obs["RA_PNT"].unit = obs["DEC_PNT"].unit = "deg"
    obs["ONTIME"].unit = obs["LIVETIME"].unit = obs["TSTART"].unit = obs["TSTOP"].unit = "s"
    obs.meta.update({"MJDREFI": 51910, "MJDREFF": 7.428703703703703e-4, "TIMESYS": "TT"})
    obs.write(path / "obs-index.fits.gz", overwrite=True)
    return path
