"""The small survey mosaic of the survey tests and how its products are compared.

A module of its own (not conftest.py): test modules import it by name, which works from any
working directory, whereas ``from conftest import`` picks whichever conftest is first on sys.path.
"""

from __future__ import annotations

from pathlib import Path

#: 30 runs: 3 columns of 10 pointings (0.7 deg apart) around l = 0, |b| < 3.5 deg.
SMALL_SURVEY = {"n_runs": 30, "l_range": (358.95, 1.05), "seed": 4}


def mosaic_config(store: Path, *, chunks: int = 40, output_format: str = "zarr") -> dict:
    """A small survey mosaic: 6 x 6 deg at 0.05 deg (120 x 120 pixels, 9 chunks of 40), 4 energy
    bins, adaptive ring, significance at 0.1 and 0.2 deg."""
    return {
        "data": {"datastore": str(store)},
        "geometry": {"center": {"lon": "0 deg", "lat": "0 deg"}, "width": ["6 deg", "6 deg"], "binsz": "0.05 deg",
                     "energy": {"min": "0.3 TeV", "max": "30 TeV", "nbins": 4}},
        "maps": {"offset_max": "2.5 deg", "safe_energy": "aeff-default", "chunks": chunks},
        "exclusion": {"regions": ["galactic; circle(0.5, 0.2, 0.3)"]},
        "ring": {"method": "adaptive_ring", "r_in": "0.5 deg", "width": "0.3 deg", "r_out_max": "1.1 deg",
                 "theta": "0.2 deg"},
        "significance": {"correlation_radius": ["0.1 deg", "0.2 deg"]},
        "output": {"format": output_format},
    }


def beyond_runs_config(store: Path, *, chunks: int = 40) -> dict:
    """`mosaic_config` on a map three times as wide (l = -1 ... 17 deg, 360 x 120 pixels): the runs
    (l < 1.05 deg, 2.5 deg field of view) reach none of its chunks beyond l = 5 deg, and with blocks of
    two chunks the ring's and significance's blocks beyond l = 9 deg see none either."""
    config = mosaic_config(store, chunks=chunks)
    config["geometry"] = {**config["geometry"], "center": {"lon": "8 deg", "lat": "0 deg"},
                          "width": ["18 deg", "6 deg"]}
    return config


def in_memory_products(config: dict) -> dict:
    """The products of a streamed configuration computed in memory (synchronous scheduler)."""
    import dask

    from xgamma.workflow import inputs, validate_config
    from xgamma.workflow.analysis import Analysis
    from xgamma.workflow.mosaic import mosaic_datasets

    config = validate_config(config)
    analysis = Analysis(config=config, observations=inputs.select_observations(config),
                        geometry=inputs.build_geometry(config))
    (products,) = dask.compute(mosaic_datasets(analysis), scheduler="sync")
    return products


def assert_products_equal(found: dict, expected: dict) -> None:
    """Map making is exact whatever the chunks and scheduler; the ring and significance are FFT
    convolutions over blocks that depend on the chunks: equal to 1e-9 (relative) there."""
    import numpy as np

    for store, dataset in expected.items():
        assert set(found[store].data_vars) == set(dataset.data_vars), store
        for name, var in dataset.data_vars.items():
            got = found[store][name].transpose(*var.dims).values
            if store == "maps" or name in ("counts", "exposure", "background", "exclusion"):
                np.testing.assert_array_equal(got, var.values, err_msg=f"{store}/{name}")
            else:
                np.testing.assert_allclose(got, var.values, rtol=1e-9, atol=1e-9 * float(np.nanmax(np.abs(var))),
                                           err_msg=f"{store}/{name}")
