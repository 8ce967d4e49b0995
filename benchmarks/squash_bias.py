"""Flux bias of an image fit whose weighting spectrum differs from the source's (issue 10 point 1).

H.E.S.S. DL3 DR1, the four Crab runs, ``examples/hess-crab-maps.yaml`` geometry (0.1-10 TeV in
10 bins, safe range ``aeff-default``: every run starts at 1 TeV), point source x PowerLaw2 over
1-10 TeV with the index frozen (a source index), background norm free. For each weighting index
the cube is squashed (`squash_energy`) with that index, the PSF kernel weighted the same way,
and the image fitted; the cube fit (no energy dispersion, same model) is the reference.

Columns: ``expected`` is the bias the exposure alone predicts, (image prediction / cube prediction
at the source position) - 1, with the flux of the source integrated over the pixel's valid
range; the fitted amplitude is biased by about 1 / (1 + expected) - 1. ``fitted`` is the measured
(image amplitude / cube amplitude) - 1, and ``to_image`` the same for `MapDataset.to_image`,
which predicts each energy bin with the source's own spectrum (no weighting spectrum).

Usage::

    XGAMMA_DATA=../shared/data python benchmarks/squash_bias.py [--source-index 2.6]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord

from xgamma.fit import MapDataset, fit
from xgamma.fit.source_irfs import source_kernels
from xgamma.geometry import SkyGeometry, energy_edges
from xgamma.io.datastore import DataStore
from xgamma.makers import make_maps, squash_energy
from xgamma.models import BackgroundModel, Point, PowerLaw, PowerLaw2, SkyModel

CRAB = SkyCoord(83.633, 22.014, unit="deg")


def models(index: float) -> list:
    return [SkyModel(PowerLaw2(emin="1 TeV", emax="10 TeV", index={"value": index, "frozen": True},
                               amplitude="1e-11 cm-2 s-1"), Point(lon_0="83.63 deg", lat_0="22.01 deg", frame="icrs"),
                     name="crab"),
            BackgroundModel(norm={"value": 1, "frozen": False})]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source-index", type=float, default=2.6)
    args = parser.parse_args()
    store = DataStore(Path(os.environ["XGAMMA_DATA"]) / "hess-dl3-dr1")
    observations = store.observations([23523, 23526, 23559, 23592])
    geometry = SkyGeometry.create(CRAB, width=4 * u.deg, binsz=0.02 * u.deg, frame="icrs", projection="TAN",
                                  energy_edges=energy_edges(0.1 * u.TeV, 10 * u.TeV, 10))
    options = dict(offset_max=2 * u.deg, safe_energy="aeff-default")
    cube = make_maps(observations, geometry, **options).compute()
    psf, _ = source_kernels(observations, geometry, models(args.source_index), **options)
    reference = fit(MapDataset.from_maps(cube, psf=psf, models=models(args.source_index)))
    amplitude = reference.values["crab.amplitude"]
    image = fit(MapDataset.from_maps(cube, psf=psf, models=models(args.source_index)).to_image())
    print(f"source index {args.source_index}; cube fit amplitude {amplitude:.4e} +- "
          f"{reference.errors['crab.amplitude']:.2e} cm-2 s-1; to_image {image.values['crab.amplitude'] / amplitude - 1:+.2%}")
    print(f"{'weighting index':>16s} {'expected':>9s} {'fitted':>9s} {'fitted/sigma':>12s}")
    truth = models(args.source_index)[0]
    cube_npred = MapDataset.from_maps(cube, psf=psf, models=[truth]).npred_source("crab").values.sum()
    for weighting in (1.5, 2.0, 2.3, 2.6, 3.0, 3.5):
        spectrum = {"type": "powerlaw", "index": weighting}
        images = squash_energy(cube, spectrum=spectrum)
        kernel, _ = source_kernels(observations, geometry, [truth], image=True, spectrum=PowerLaw(index=weighting),
                                   **options)
        dataset = MapDataset.from_maps(images, psf=kernel, models=models(args.source_index))
        expected = MapDataset.from_maps(images, psf=kernel, models=[truth]).npred_source("crab").values.sum()
        result = fit(dataset)
        fitted = result.values["crab.amplitude"] / amplitude - 1
        sigma = (result.values["crab.amplitude"] - amplitude) / reference.errors["crab.amplitude"]
        print(f"{weighting:16.1f} {expected / cube_npred - 1:+9.2%} {fitted:+9.2%} {sigma:+12.2f}")


if __name__ == "__main__":
    main()
