"""Fit benchmark: the reference fit (issue 3) with xgamma and Gammapy 2.1 in the same run.

Both tools build their own maps from the three CTA 1DC Galactic Centre runs and fit a point
source x PowerLaw2 (index frozen at 2, 0.1-10 TeV) with a frozen background model, starting at
(0.01, 0.01) deg and 3e-12 cm-2 s-1. Printed: best-fit values and errors side by side with their
differences in units of the Gammapy error, the fit wall time (MIGRAD + HESSE, maps and PSF
prepared beforehand, imports excluded), the number of statistic evaluations, and the cost of one
npred evaluation (xgamma: one likelihood call, cutout + Cash; Gammapy: ``dataset.npred()``).

xgamma's ``fit`` does more than Gammapy's ``Fit().run``: the linear pre-fit, the TS of the source
(one more fit without it) and the scan for a lower minimum (xgamma.fit.scan). Its time is printed
together with that of ``minimize`` alone (the pre-fit, MIGRAD and HESSE), which compares with
Gammapy's. ``--free-norm`` frees the background norm (the issue-10 configuration).

Usage::

    XGAMMA_DATA=../shared/data python benchmarks/bench_fit.py [--repeat 3] [--no-gammapy]
"""

from __future__ import annotations

import argparse
import os
import time

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord

OBS_IDS = [110380, 111140, 111159]
NAMES = ("lon_0", "lat_0", "amplitude")


def run_xgamma(data: str, repeat: int, point_method: str = "exact", free_norm: bool = False) -> dict:
    from xgamma.fit import MapDataset, fit, minimize, psf_kernel_for_geometry
    from xgamma.fit.limits import default_limits
    from xgamma.geometry import SkyGeometry
    from xgamma.io.datastore import DataStore
    from xgamma.makers import make_maps, squash_energy
    from xgamma.models import BackgroundModel, Point, PowerLaw2, SkyModel

    t0 = time.perf_counter()
    observations = DataStore(f"{data}/cta-1dc/index/gps").observations(OBS_IDS)
    geometry = SkyGeometry.create((0, 0), width=(10 * u.deg, 8 * u.deg), binsz=0.02 * u.deg, frame="galactic",
                                  energy_edges=np.geomspace(0.1, 10, 11) * u.TeV)
    images = squash_energy(make_maps(observations, geometry, offset_max=4 * u.deg)).compute()
    t1 = time.perf_counter()
    kernel = psf_kernel_for_geometry(observations, geometry, SkyCoord(0, 0, unit="deg", frame="galactic"),
                                     image=True)
    t2 = time.perf_counter()
    times, local_times, result, ds = [], [], None, None

    def models():
        return [SkyModel(PowerLaw2(emin="0.1 TeV", emax="10 TeV", index={"value": 2, "frozen": True},
                                   amplitude="3e-12 cm-2 s-1"),
                         Point(lon_0="0.01 deg", lat_0="0.01 deg", frame="galactic"), name="source"),
                BackgroundModel(norm={"value": 1, "frozen": not free_norm}, tilt={"value": 0, "frozen": True})]

    for _ in range(repeat):
        ds = MapDataset.from_maps(images, psf=kernel, models=models(), point_method=point_method)
        t = time.perf_counter()
        result = fit(ds)  # includes loading the maps into numpy once
        times.append(time.perf_counter() - t)
        lik = MapDataset.from_maps(images, psf=kernel, models=models(), point_method=point_method).likelihood()
        t = time.perf_counter()
        minimize(lik, limits=default_limits(lik.models, lik.arrays))
        local_times.append(time.perf_counter() - t)
    lik = ds.likelihood()
    x = np.array([result.values[f"source.{n}"] for n in NAMES])
    n = 200
    t = time.perf_counter()
    for _ in range(n):
        lik(x)
    per_call = (time.perf_counter() - t) / n
    t = time.perf_counter()
    for _ in range(20):
        ds.npred()
    full_npred = (time.perf_counter() - t) / 20
    return {"values": {k: result.values[f"source.{k}"] for k in NAMES},
            "errors": {k: result.errors[f"source.{k}"] for k in NAMES},
            "statistic": result.statistic, "nfev": result.nfev, "fit_s": times, "local_s": local_times,
            "maps_s": t1 - t0,
            "psf_s": t2 - t1, "call_s": per_call, "npred_full_s": full_npred,
            "r68": float(kernel.r68[0].value), "r95": float(kernel.r95[0].value)}


def run_gammapy(data: str, repeat: int, free_norm: bool = False) -> dict:
    from gammapy.data import DataStore
    from gammapy.datasets import MapDataset
    from gammapy.makers import MapDatasetMaker, SafeMaskMaker
    from gammapy.maps import MapAxis, WcsGeom
    from gammapy.modeling import Fit
    from gammapy.modeling.models import FoVBackgroundModel, Models, PointSpatialModel, PowerLaw2SpectralModel, SkyModel

    t0 = time.perf_counter()
    observations = DataStore.from_dir(f"{data}/cta-1dc/index/gps").get_observations(OBS_IDS)
    e_reco = MapAxis.from_energy_bounds(0.1, 10, 10, unit="TeV", name="energy")
    e_true = MapAxis.from_energy_bounds(0.1, 10, 10, unit="TeV", name="energy_true")
    geom = WcsGeom.create(skydir=(0, 0), binsz=0.02, width=(10, 8), frame="galactic", proj="CAR", axes=[e_reco])
    stacked = MapDataset.create(geom, energy_axis_true=e_true, name="stacked")
    maker = MapDatasetMaker(selection=["counts", "exposure", "background", "psf"])
    safe = SafeMaskMaker(methods=["offset-max"], offset_max=4 * u.deg)
    for obs in observations:
        stacked.stack(safe.run(maker.run(stacked.copy(name="obs"), obs), obs))
    image = stacked.to_image()
    t1 = time.perf_counter()
    times, result = [], None
    for _ in range(repeat):
        spectral = PowerLaw2SpectralModel(emin=0.1 * u.TeV, emax=10 * u.TeV, index=2.0, amplitude="3e-12 cm-2 s-1")
        spectral.index.frozen = True
        bkg = FoVBackgroundModel(dataset_name=image.name)
        bkg.spectral_model.norm.frozen = not free_norm
        image.models = Models([SkyModel(spatial_model=PointSpatialModel(lon_0="0.01 deg", lat_0="0.01 deg",
                                                                        frame="galactic"),
                                        spectral_model=spectral, name="source"), bkg])
        t = time.perf_counter()
        result = Fit().run(image)
        times.append(time.perf_counter() - t)
    n = 20
    t = time.perf_counter()
    for _ in range(n):
        image.models["source"].spatial_model.lon_0.value += 1e-6  # force re-evaluation
        image.stat_sum()
    per_call = (time.perf_counter() - t) / n
    params = image.models["source"].parameters
    return {"values": {k: params[k].value for k in NAMES}, "errors": {k: params[k].error for k in NAMES},
            "statistic": result.total_stat, "nfev": result.optimize_result.nfev, "fit_s": times,
            "maps_s": t1 - t0, "call_s": per_call}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-gammapy", action="store_true")
    parser.add_argument("--free-norm", action="store_true", help="fit the background norm too")
    args = parser.parse_args()
    data = os.environ.get("XGAMMA_DATA")
    if not data:
        raise SystemExit("set XGAMMA_DATA")
    ours = run_xgamma(data, args.repeat, free_norm=args.free_norm)
    print(f"xgamma : maps {ours['maps_s']:.2f} s, mean PSF + kernel {ours['psf_s']:.3f} s "
          f"(r68 {ours['r68']:.4f} deg, r95 {ours['r95']:.4f} deg)")
    print(f"xgamma : fit {min(ours['fit_s']):.3f} s best / {ours['fit_s'][0]:.3f} s first (with TS and the scan; "
          f"minimize alone {min(ours['local_s']):.3f} s), nfev {ours['nfev']}, "
          f"one likelihood call {ours['call_s'] * 1e3:.3f} ms, full-map npred {ours['npred_full_s'] * 1e3:.1f} ms")
    if args.no_gammapy:
        for k in NAMES:
            print(f"  {k:10s} {ours['values'][k]: .5g} +- {ours['errors'][k]:.3g}")
        return
    ref = run_gammapy(data, args.repeat, free_norm=args.free_norm)
    bilinear = run_xgamma(data, args.repeat, point_method="bilinear", free_norm=args.free_norm)
    print(f"xgamma (point_method='bilinear', Gammapy's convention): fit {min(bilinear['fit_s']):.3f} s, "
          f"one likelihood call {bilinear['call_s'] * 1e3:.3f} ms")
    print(f"gammapy: maps {ref['maps_s']:.2f} s, fit {min(ref['fit_s']):.3f} s best / {ref['fit_s'][0]:.3f} s first, "
          f"nfev {ref['nfev']}, one stat_sum {ref['call_s'] * 1e3:.2f} ms")
    for label, res in (("exact", ours), ("bilinear", bilinear)):
        print(f"point_method={label!r}")
        print(f"  {'param':10s} {'xgamma':>26s} {'gammapy':>26s} {'diff/sigma_gp':>14s} {'err ratio':>10s}")
        for k in NAMES:
            a, ea, b, eb = res["values"][k], res["errors"][k], ref["values"][k], ref["errors"][k]
            print(f"  {k:10s} {a: .6g} +- {ea:.4g}   {b: .6g} +- {eb:.4g}   {(a - b) / eb:+14.3f} {ea / eb:10.4f}")
        print(f"  statistic  xgamma {res['statistic']:.3f}  gammapy {ref['statistic']:.3f}")
    print(f"fit speed-up (best of {args.repeat}): {min(ref['fit_s']) / min(ours['fit_s']):.1f}x with the checks, "
          f"{min(ref['fit_s']) / min(ours['local_s']):.1f}x minimize alone")


if __name__ == "__main__":
    main()
