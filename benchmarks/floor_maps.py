"""The numpy floor of the reference map making: a plain script, no framework, same maps as xgamma.

Counts, exposure and background of the 3 CTA 1DC Galactic Centre runs on the 10 x 400 x 500
galactic CAR cube (0.02 deg, 0.1-10 TeV in 10 bins, offset_max 4 deg), stacked. Straight-line
numpy with astropy only for FITS reading and the WCS: read the index, per run the RA/DEC/ENERGY
columns and the IRF tables, place events on pixels, evaluate the effective area and the
background (log-log integrated over each energy bin) on the pixels within offset_max, in slices
of 8192 pixels. It knows only what these files hold (CTA 1DC units), which is what makes it a
floor: xgamma's map making does the same arithmetic behind a general API and a dask graph.

``bench_maps.py`` runs it in the same run as xgamma and Gammapy (``floor`` rows). Alone::

    XGAMMA_DATA=/work/shared/data python benchmarks/floor_maps.py [--repeat 5] [--save maps.npz]

prints the time of each repetition (first = cold: files not yet in this process) as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

OBS_IDS = (110380, 111140, 111159)
SHAPE = (400, 500)  # (lat, lon)
BINSZ = 0.02
EDGES = np.geomspace(0.1, 10, 11)  # TeV
OFFSET_MAX = 4.0
SLICE = 8192
TINY32 = float(np.finfo(np.float32).tiny)


def icrs_to_galactic() -> np.ndarray:
    """3 x 3 rotation of cartesian vectors from ICRS to Galactic (from astropy, once)."""
    from astropy.coordinates import CartesianRepresentation, SkyCoord

    return np.asarray(SkyCoord(CartesianRepresentation(np.eye(3)), frame="icrs").galactic.cartesian.xyz.value)


ICRS_TO_GAL = icrs_to_galactic()


def wcs() -> WCS:
    header = {"NAXIS": 2, "NAXIS1": SHAPE[1], "NAXIS2": SHAPE[0], "CTYPE1": "GLON-CAR", "CTYPE2": "GLAT-CAR",
              "CRPIX1": (SHAPE[1] + 1) / 2, "CRPIX2": (SHAPE[0] + 1) / 2, "CDELT1": -BINSZ, "CDELT2": BINSZ,
              "CRVAL1": 0.0, "CRVAL2": 0.0, "CUNIT1": "deg", "CUNIT2": "deg"}
    return WCS(header)


def vectors(lon, lat):
    lon, lat = np.radians(lon), np.radians(lat)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)


def rotate(v, m):
    return v[..., 0:1] * m[:, 0] + v[..., 1:2] * m[:, 1] + v[..., 2:3] * m[:, 2]


def pixel_grid(w: WCS):
    """Pixel-centre unit vectors (n, 3) and exact solid angles (n,) (two spherical triangles per pixel)."""
    y, x = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    centres = vectors(*w.wcs_pix2world(x.ravel(), y.ravel(), 0))
    yc, xc = np.mgrid[0:SHAPE[0] + 1, 0:SHAPE[1] + 1] - 0.5
    c = vectors(*w.wcs_pix2world(xc, yc, 0))
    a, b, cc, d = c[:-1, :-1], c[:-1, 1:], c[1:, 1:], c[1:, :-1]

    def triangle(p, q, r):
        triple = np.einsum("...i,...i", p, np.cross(q, r))
        den = 1 + np.einsum("...i,...i", p, q) + np.einsum("...i,...i", q, r) + np.einsum("...i,...i", r, p)
        return np.abs(2 * np.arctan2(triple, den))

    return centres, (triangle(a, b, cc) + triangle(a, cc, d)).ravel()


def nodes(lo, hi, log):
    return np.sqrt(lo * hi) if log else 0.5 * (lo + hi)


def lookup(x, node, edge_lo, edge_hi):
    """Interval index, weight and inside-the-edges flag on uniform nodes (linear extrapolation to the edges)."""
    step = node[1] - node[0]
    pos = np.clip((x - node[0]) / step, 0, node.size - 2)
    idx = pos.astype(np.intp)
    weight = (x - node[idx]) / (node[idx + 1] - node[idx])
    return idx, weight, (x >= edge_lo) & (x <= edge_hi)


def energy_rows(table, log_nodes, log_x):
    """Table (n_e, ...) interpolated along its first axis at log energies ``log_x`` (linear in log E)."""
    idx = np.clip(np.searchsorted(log_nodes, log_x, side="right") - 1, 0, log_nodes.size - 2)
    w = ((log_x - log_nodes[idx]) / (log_nodes[idx + 1] - log_nodes[idx])).reshape(-1, *[1] * (table.ndim - 1))
    return (1 - w) * table[idx] + w * table[idx + 1]


def read_run(store: str, obs_id: int):
    hdu = fits.getdata(os.path.join(store, "hdu-index.fits.gz"), 1)
    rows = hdu[hdu["OBS_ID"] == obs_id]
    files = {t.strip(): os.path.join(store, d.strip(), f.strip()) for t, d, f in
             zip(rows["HDU_TYPE"], rows["FILE_DIR"], rows["FILE_NAME"])}
    with fits.open(files["events"], memmap=True) as h:
        ev, header = h["EVENTS"].data, h["EVENTS"].header
        events = [np.array(ev[c], dtype=float) for c in ("RA", "DEC", "ENERGY")]
        info = {k: float(header[k]) for k in ("RA_PNT", "DEC_PNT", "LIVETIME", "ONTIME")}
    with fits.open(files["aeff"], memmap=True) as h:
        aeff = h["EFFECTIVE AREA"].data[0]
        bkg = h["BACKGROUND"].data[0]
        aeff = {k: np.array(aeff[k], dtype=float) for k in ("ENERG_LO", "ENERG_HI", "THETA_LO", "THETA_HI", "EFFAREA")}
        bkg = {k: np.array(bkg[k], dtype=float) for k in ("ENERG_LO", "ENERG_HI", "DETX_LO", "DETX_HI", "DETY_LO",
                                                          "DETY_HI", "BGD")}
    return events, info, aeff, bkg


def fov_matrix(ra, dec):
    a, d = np.radians(ra), np.radians(dec)
    m = np.array([[np.cos(d) * np.cos(a), np.cos(d) * np.sin(a), np.sin(d)], [np.sin(a), -np.cos(a), 0.0],
                  [-np.sin(d) * np.cos(a), -np.sin(d) * np.sin(a), np.cos(d)]])
    return m @ ICRS_TO_GAL.T  # galactic vectors -> ICRS -> FoV frame


def make_maps(store: str, kernel=None) -> np.ndarray:
    w = wcs()
    centres, solid_angle = pixel_grid(w)
    n_pix = centres.shape[0]
    out = np.zeros((3, EDGES.size - 1, n_pix))
    centers = np.sqrt(EDGES[:-1] * EDGES[1:])
    e0, e1 = EDGES[:-1], EDGES[1:]
    ratio, ln_r = (e1 / e0)[:, None], np.log(e1 / e0)[:, None]
    pre = 1e6 * e0[:, None] * ln_r  # MeV-1 table x TeV -> factor 1e6
    for obs_id in OBS_IDS:
        (ra, dec, energy), info, aeff, bkg = read_run(store, obs_id)
        # counts: events -> galactic -> pixels, energy bins; one bincount
        v = rotate(vectors(ra, dec), ICRS_TO_GAL)
        lon = np.degrees(np.arctan2(v[:, 1], v[:, 0])) % 360
        lat = np.degrees(np.arctan2(v[:, 2], np.hypot(v[:, 0], v[:, 1])))
        x, y = w.wcs_world2pix(lon, lat, 0)
        ix, iy = np.floor(x + 0.5), np.floor(y + 0.5)
        ebin = np.searchsorted(EDGES, energy, side="right") - 1
        keep = (energy >= EDGES[0]) & (energy < EDGES[-1]) & (ix >= 0) & (ix < SHAPE[1]) & (iy >= 0) & (iy < SHAPE[0])
        flat = (ebin[keep] * SHAPE[0] + iy[keep].astype(np.intp)) * SHAPE[1] + ix[keep].astype(np.intp)
        pointing = rotate(vectors(info["RA_PNT"], info["DEC_PNT"]), ICRS_TO_GAL)
        offset = np.empty(n_pix)
        for start in range(0, n_pix, SLICE):  # slices: no map-sized temporaries
            d = centres[start:start + SLICE] - pointing
            offset[start:start + SLICE] = np.degrees(2 * np.arcsin(np.minimum(np.sqrt((d * d).sum(axis=1)) / 2, 1)))
        inside_mask = offset < OFFSET_MAX
        inside = np.flatnonzero(inside_mask)
        pix_events = flat % n_pix
        np.add.at(out[0].reshape(-1), flat[inside_mask[pix_events]], 1.0)
        # IRF tables on this map's energy grid, once per run
        a_log_nodes = np.log(nodes(aeff["ENERG_LO"], aeff["ENERG_HI"], True))
        a_tab = energy_rows(aeff["EFFAREA"].T if aeff["EFFAREA"].shape[0] != a_log_nodes.size else aeff["EFFAREA"],
                            a_log_nodes, np.log(centers))
        a_valid = (centers >= aeff["ENERG_LO"][0]) & (centers <= aeff["ENERG_HI"][-1])
        a_tab[~a_valid] = 0
        th = nodes(aeff["THETA_LO"], aeff["THETA_HI"], False)
        b_log = np.log(np.maximum(bkg["BGD"], TINY32))  # numpy axes (E, fov_lon, fov_lat), as Gammapy reads them
        b_log_nodes = np.log(nodes(bkg["ENERG_LO"], bkg["ENERG_HI"], True))
        b_tab = energy_rows(b_log, b_log_nodes, np.log(EDGES))
        bad_bins = ~((EDGES[:-1] >= bkg["ENERG_LO"][0]) & (EDGES[1:] <= bkg["ENERG_HI"][-1]))
        a0, dx = b_tab[:, :-1, :-1], b_tab[:, 1:, :-1] - b_tab[:, :-1, :-1]
        dy = b_tab[:, :-1, 1:] - b_tab[:, :-1, :-1]
        dxy = b_tab[:, 1:, 1:] - b_tab[:, 1:, :-1] - dy
        parts = [np.ascontiguousarray(p.reshape(EDGES.size, -1)) for p in (a0, dx, dy, dxy)]
        nx_nodes, ny_nodes = nodes(bkg["DETX_LO"], bkg["DETX_HI"], False), nodes(bkg["DETY_LO"], bkg["DETY_HI"], False)
        m = fov_matrix(info["RA_PNT"], info["DEC_PNT"])
        tables = dict(a_tab=a_tab, th=th, th_edges=(aeff["THETA_LO"][0], aeff["THETA_HI"][-1]), parts=parts,
                      nx_nodes=nx_nodes, ny_nodes=ny_nodes, m=m, bad_bins=bad_bins,
                      det_edges=(bkg["DETX_LO"][0], bkg["DETX_HI"][-1], bkg["DETY_LO"][0], bkg["DETY_HI"][-1]))
        scale = (info["LIVETIME"], info["ONTIME"])
        if kernel is not None:
            kernel(out, inside, offset, centres, solid_angle, tables, scale, ratio, ln_r, pre)
            continue
        for start in range(0, inside.size, SLICE):
            pix = inside[start:start + SLICE]
            # exposure
            idx, wgt, valid = lookup(offset[pix], th, aeff["THETA_LO"][0], aeff["THETA_HI"][-1])
            lo = a_tab[:, idx]
            exposure = lo + wgt * (a_tab[:, idx + 1] - lo)
            exposure[:, ~valid] = 0
            out[1][:, pix] += exposure * info["LIVETIME"]
            # background: FoV coordinates, bilinear log rate at the edges, log-log integral
            f = rotate(centres[pix], m)
            fov_lon = np.degrees(np.arctan2(f[:, 1], f[:, 0]))
            fov_lat = np.degrees(np.arcsin(np.clip(f[:, 2], -1, 1)))
            ix_, wx, vx = lookup(fov_lon, nx_nodes, bkg["DETX_LO"][0], bkg["DETX_HI"][-1])
            iy_, wy, vy = lookup(fov_lat, ny_nodes, bkg["DETY_LO"][0], bkg["DETY_HI"][-1])
            cell = ix_ * (ny_nodes.size - 1) + iy_
            a_, dx_, dy_, dxy_ = (np.take(p, cell, axis=1) for p in parts)
            logv = a_ + wx * dx_ + wy * (dy_ + wx * dxy_)
            vals = np.exp(logv.astype(np.float32)).astype(float)
            with np.errstate(divide="ignore", invalid="ignore"):
                xx = logv[1:] - logv[:-1] + ln_r
                num = (vals[1:] * ratio - vals[:-1]) / xx
            small = np.abs(xx) < 0.1
            if small.any():
                xs = xx[small]
                num[small] = vals[:-1][small] * (1 + xs * (0.5 + xs * (1 / 6 + xs * (1 / 24 + xs / 120))))
            num *= pre
            num[:, ~(vx & vy)] = 0
            num[bad_bins] = 0
            out[2][:, pix] += num * (solid_angle[pix] * info["ONTIME"])
    return out.reshape(3, EDGES.size - 1, *SHAPE)


def numba_kernel():
    """The per-pixel IRF loop compiled with numba (``--numba``): returns a ``kernel`` for `make_maps`."""
    import numba

    @numba.njit(cache=False, fastmath=False)
    def pixels(out1, out2, inside, offset, centres, solid_angle, a_tab, th0, th_step, th_n, th_lo, th_hi, a, dx, dy,
               dxy, x0, x_step, x_n, y0, y_step, y_n, det, m, bad, live, ontime, ratio, ln_r, pre):
        n_e = a_tab.shape[0]
        logv = np.empty(a.shape[0])
        for k in range(inside.size):
            p = inside[k]
            o = offset[p]
            if th_lo <= o <= th_hi:
                pos = min(max((o - th0) / th_step, 0.0), th_n - 2.0)
                i = int(pos)
                w = (o - (th0 + i * th_step)) / th_step
                for e in range(n_e):
                    out1[e, p] += (a_tab[e, i] + w * (a_tab[e, i + 1] - a_tab[e, i])) * live
            fx = m[0, 0] * centres[p, 0] + m[0, 1] * centres[p, 1] + m[0, 2] * centres[p, 2]
            fy = m[1, 0] * centres[p, 0] + m[1, 1] * centres[p, 1] + m[1, 2] * centres[p, 2]
            fz = m[2, 0] * centres[p, 0] + m[2, 1] * centres[p, 1] + m[2, 2] * centres[p, 2]
            lon = np.degrees(np.arctan2(fy, fx))
            lat = np.degrees(np.arcsin(min(max(fz, -1.0), 1.0)))
            if not (det[0] <= lon <= det[1] and det[2] <= lat <= det[3]):
                continue
            ix = int(min(max((lon - x0) / x_step, 0.0), x_n - 2.0))
            iy = int(min(max((lat - y0) / y_step, 0.0), y_n - 2.0))
            wx = (lon - (x0 + ix * x_step)) / x_step
            wy = (lat - (y0 + iy * y_step)) / y_step
            c = ix * (y_n - 1) + iy
            for e in range(a.shape[0]):
                logv[e] = a[e, c] + wx * dx[e, c] + wy * (dy[e, c] + wx * dxy[e, c])
            scale = solid_angle[p] * ontime
            v0 = np.exp(np.float32(logv[0]))
            for e in range(a.shape[0] - 1):
                v1 = np.exp(np.float32(logv[e + 1]))
                x = logv[e + 1] - logv[e] + ln_r[e]
                if abs(x) < 0.1:
                    num = v0 * (1 + x * (0.5 + x * (1 / 6 + x * (1 / 24 + x / 120))))
                else:
                    num = (v1 * ratio[e] - v0) / x
                if not bad[e]:
                    out2[e, p] += num * pre[e] * scale
                v0 = v1

    def kernel(out, inside, offset, centres, solid_angle, t, scale, ratio, ln_r, pre):
        a, dx, dy, dxy = t["parts"]
        pixels(out[1], out[2], inside, offset, centres, solid_angle, t["a_tab"], t["th"][0], t["th"][1] - t["th"][0],
               t["th"].size, *t["th_edges"], a, dx, dy, dxy, t["nx_nodes"][0], t["nx_nodes"][1] - t["nx_nodes"][0],
               t["nx_nodes"].size, t["ny_nodes"][0], t["ny_nodes"][1] - t["ny_nodes"][0], t["ny_nodes"].size,
               np.array(t["det_edges"]), t["m"], t["bad_bins"], scale[0], scale[1], ratio.ravel(), ln_r.ravel(),
               pre.ravel())

    return kernel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--save", help="write the maps (counts, exposure, background) to this .npz file")
    parser.add_argument("--numba", action="store_true", help="the per-pixel IRF loop compiled with numba")
    args = parser.parse_args()
    store = os.path.join(os.environ["XGAMMA_DATA"], "cta-1dc", "index", "gps")
    result = {}
    kernel = None
    if args.numba:
        t0 = time.perf_counter()
        kernel = numba_kernel()
        result["import_s"] = time.perf_counter() - t0  # import numba; the JIT compile is in the first repetition
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        maps = make_maps(store, kernel)
        times.append(time.perf_counter() - t0)
    if args.save:
        np.savez(args.save, counts=maps[0], exposure=maps[1], background=maps[2])
    print(json.dumps({"times": times, **result}))


if __name__ == "__main__":
    main()
