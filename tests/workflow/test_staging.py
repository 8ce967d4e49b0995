"""`StagedOutput`: products appear together with their manifest, or not at all."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from xgamma.exceptions import XgammaError
from xgamma.workflow.config import dump_config, validate_config
from xgamma.workflow.staging import MANIFEST, StagedOutput, read_manifest

NAMES = ("maps.fits", "fit.json", "plots")


def publish(output, files: dict[str, str]) -> StagedOutput:
    with StagedOutput(output, product_names=NAMES) as staging:
        for name, text in files.items():
            path = staging.path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    return staging


def test_products_appear_with_a_manifest_listing_them(tmp_path):
    staging = publish(tmp_path, {"maps.fits": "cube", "plots/counts.png": "png"})
    manifest = read_manifest(tmp_path)
    assert manifest["complete"] and set(manifest["files"]) == {"maps.fits", "plots"}
    assert manifest["files"]["maps.fits"]["bytes"] == 4 and "xgamma" in manifest["versions"]
    assert staging.final(staging.path / "maps.fits") == tmp_path / "maps.fits"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["maps.fits", "plots", MANIFEST])


def test_a_failed_run_leaves_the_earlier_run_as_it_was(tmp_path):
    publish(tmp_path, {"maps.fits": "old cube", "fit.json": "old fit"})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(RuntimeError, match="stage failed"):
        with StagedOutput(tmp_path, product_names=NAMES) as staging:
            (staging.path / "maps.fits").write_text("new cube")
            raise RuntimeError("stage failed")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_ctrl_c_while_products_are_swapped_waits_for_the_swap(tmp_path, monkeypatch):
    """A Ctrl-C that arrives while the earlier run's products are being replaced takes effect
    once the new run is complete: never a folder holding parts of both runs."""
    import signal

    from xgamma.workflow import staging as staging_module

    publish(tmp_path, {"maps.fits": "old cube", "fit.json": "old fit"})
    real_remove = staging_module._remove

    def remove_then_interrupt(path):
        real_remove(path)
        if path.name == "fit.json":
            signal.raise_signal(signal.SIGINT)  # between removing the old products and moving the new in

    monkeypatch.setattr(staging_module, "_remove", remove_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        publish(tmp_path, {"maps.fits": "new cube", "fit.json": "new fit"})
    assert (tmp_path / "maps.fits").read_text() == "new cube" and (tmp_path / "fit.json").read_text() == "new fit"
    assert read_manifest(tmp_path)["complete"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_stale_products_of_an_earlier_run_are_removed(tmp_path):
    publish(tmp_path, {"maps.fits": "old", "fit.json": "old fit", "plots/a.png": "old"})
    (tmp_path / "notes.txt").write_text("the user's file")
    publish(tmp_path, {"maps.fits": "new"})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["maps.fits", MANIFEST, "notes.txt"])
    assert (tmp_path / "maps.fits").read_text() == "new"


def test_products_without_a_manifest_are_replaced_too(tmp_path):
    """A folder from an older xgamma (no manifest): files with product names are not kept beside new ones."""
    (tmp_path / "fit.json").write_text("from an unknown run")
    publish(tmp_path, {"maps.fits": "new"})
    assert not (tmp_path / "fit.json").exists()


def test_leftovers_of_killed_runs_are_removed(tmp_path):
    dead = tmp_path / ".xgamma-run-999999999-abc"  # no such process
    dead.mkdir()
    (dead / "maps.fits").write_text("partial")
    (tmp_path / ".maps.fits.x1y2.part").write_text("partial")
    publish(tmp_path, {"maps.fits": "new"})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["maps.fits", MANIFEST])


def test_a_folder_another_live_run_writes_into_is_refused(tmp_path):
    busy = tmp_path / f".xgamma-run-{os.getppid()}-abc"  # the parent process is alive
    busy.mkdir()
    with pytest.raises(XgammaError, match=f"process {os.getppid()}"):
        publish(tmp_path, {"maps.fits": "new"})
    assert busy.exists()


def test_dumped_config_validates_to_the_same_configuration(cta_datastore_dir, monkeypatch):
    monkeypatch.setenv("STORE", str(cta_datastore_dir))
    raw = {
        "data": {"datastore": "${STORE}", "obs_ids": [110380]},
        "geometry": {"center": {"lon": "0 deg", "lat": "0.5 deg", "frame": "galactic"}, "width": ["3 deg", "2 deg"],
                     "binsz": "0.05 deg", "energy": {"min": "300 GeV", "max": "10 TeV", "nbins": 3}},
        "maps": {"offset_max": 2.5, "squash": {"spectrum": {"index": 2.3}}},
        "models": [{"name": "src", "spatial": {"type": "point", "lon_0": "0 deg", "lat_0": "0 deg"},
                    "spectral": {"type": "powerlaw2", "amplitude": "1e-12 cm-2 s-1"}}],
        "ring": {"r_in": "0.5 deg"},
        "plots": False,
    }
    config = validate_config(raw)
    text = dump_config(config)
    assert "${STORE}" not in text and str(cta_datastore_dir) in text
    again = validate_config(yaml.safe_load(text))
    assert dump_config(again) == text
    assert again["geometry"]["center"].separation(config["geometry"]["center"]).deg < 1e-12
    assert again["geometry"]["energy"]["min"] == config["geometry"]["energy"]["min"]
    assert json.dumps(again["models"]) == json.dumps(config["models"])
