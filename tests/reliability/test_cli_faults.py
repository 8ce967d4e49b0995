"""``xgamma`` against a hostile environment: output folders in the way, file-size limits, bad
schedulers, reruns over earlier runs, dry runs."""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys

import pytest
import yaml
from corpus_dl3_cases import column_values
from corpus_runner import assert_no_products, base_config, run_cli
from corpus_stores import copy_store

from xgamma.workflow.staging import read_manifest


@pytest.fixture
def maps_config(base_stores, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(base_config(base_stores["hess"], "maps")))
    return path


def _one_error(outcome, *needles: str) -> str:
    assert outcome.code == 1, outcome.stderr
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xgamma: error:"), outcome.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_output_whose_parent_is_a_file(maps_config, tmp_path):
    (tmp_path / "file").write_text("in the way")
    outcome = run_cli(["run", str(maps_config), "--output", str(tmp_path / "file" / "out"), "--quiet"])
    _one_error(outcome, str(tmp_path / "file"))


def test_output_that_is_a_file(maps_config, tmp_path):
    (tmp_path / "out").write_text("in the way")
    _one_error(run_cli(["run", str(maps_config), "--output", str(tmp_path / "out"), "--quiet"]), "out")
    assert (tmp_path / "out").read_text() == "in the way"


def test_file_size_limit_gives_an_error_and_no_product(maps_config, tmp_path):
    """Writing past RLIMIT_FSIZE (as on a full disk): one error line, no product, no leftover."""
    output = tmp_path / "out"

    def limit() -> None:  # maps.fits is 288 kB: it cannot be written
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    result = subprocess.run([sys.executable, "-m", "xgamma.cli.main", "run", str(maps_config), "--output",
                             str(output), "--quiet"], capture_output=True, text=True, preexec_fn=limit, timeout=300)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("xgamma: error: File too large"), result.stderr
    assert_no_products(output)
    assert not list(output.iterdir()), "the staging folder was not removed"


def test_unreachable_scheduler(maps_config, tmp_path):
    outcome = run_cli(["run", str(maps_config), "--output", str(tmp_path / "out"), "--scheduler",
                       f"tcp://127.0.0.1:{closed_port()}", "--quiet"])
    _one_error(outcome, "--scheduler", "no dask scheduler reachable")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("address", ["not a url", "tcp://127.0.0.1", "tcp://127.0.0.1:notaport"])
def test_malformed_scheduler_address(maps_config, tmp_path, address):
    outcome = run_cli(["run", str(maps_config), "--output", str(tmp_path / "out"), "--scheduler", address])
    _one_error(outcome, "--scheduler", address)


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_workers_must_be_positive(maps_config, tmp_path, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(["run", str(maps_config), "--output", str(tmp_path / "out"), "--workers", value])
    assert exit_info.value.code == 2


def test_dry_run_checks_everything_and_writes_nothing(base_stores, tmp_path):
    config = base_config(base_stores["hess"], "full")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    outcome = run_cli(["run", str(path), "--output", str(tmp_path / "out"), "--dry-run"])
    assert outcome.code == 0, outcome.stderr
    assert "observations: 2 (23523, 23526)" in outcome.stdout and "stages: maps, fit, significance" in outcome.stdout
    assert not (tmp_path / "out").exists()
    # A bad model is found by the dry run, before any map would be made.
    config["models"][0]["spatial"]["type"] = "nosuch"
    path.write_text(yaml.safe_dump(config))
    _one_error(run_cli(["run", str(path), "--output", str(tmp_path / "out"), "--dry-run"]), "models[0]", "nosuch")


def test_a_failing_rerun_keeps_the_earlier_complete_run(base_stores, base_results, tmp_path):
    """The PSF of one run is damaged: the fit stage fails after the maps were made. The folder keeps
    the earlier run's consistent products (no new maps beside the old fit.json)."""
    output = tmp_path / "out"
    shutil.copytree(base_results["hess", "full"], output)
    before = {p.name: p.read_bytes() for p in output.iterdir()}
    store = copy_store(base_stores["hess"], tmp_path / "store")
    column_values("RPSF", float("nan"), "10%", hdu="PSF", hdu_type="psf")(store)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(base_config(store, "full")))
    _one_error(run_cli(["run", str(path), "--output", str(output), "--quiet"]), "RPSF")
    assert {p.name: p.read_bytes() for p in output.iterdir()} == before


def test_a_rerun_with_fewer_stages_removes_the_stale_products(base_stores, base_results, tmp_path, maps_config):
    output = tmp_path / "out"
    shutil.copytree(base_results["hess", "full"], output)
    assert (output / "fit.json").exists()
    outcome = run_cli(["run", str(maps_config), "--output", str(output), "--quiet"])
    assert outcome.code == 0, outcome.stderr
    names = sorted(p.name for p in output.iterdir())
    assert names == ["config.yaml", "images.fits", "maps.fits", "products.json", "summary.json"]
    assert set(read_manifest(output)["files"]) == set(names) - {"products.json"}
    # config.yaml is the configuration as it ran: running it again gives the same maps.
    again = run_cli(["run", str(output / "config.yaml"), "--output", str(tmp_path / "again"), "--quiet"])
    assert again.code == 0, again.stderr
    summary = json.loads((tmp_path / "again" / "summary.json").read_text())
    assert summary == json.loads((output / "summary.json").read_text())


def test_info_shows_one_run_or_all(base_stores, hess_datastore_dir):
    store = base_stores["hess"]
    one = run_cli(["info", str(store.path), "--obs-id", "23526"])
    assert one.code == 0 and "n_obs=1" in one.stdout and "observation 23526" in one.stdout
    assert "23523" not in one.stdout
    everything = run_cli(["info", str(hess_datastore_dir), "--all"])
    assert everything.code == 0 and all(str(i) in everything.stdout for i in (20136, 47829))
    default = run_cli(["info", str(hess_datastore_dir)])
    assert len(default.stdout.splitlines()) < len(everything.stdout.splitlines())
    unknown = run_cli(["info", str(store.path), "--obs-id", "1"])
    _one_error(unknown, "unknown obs id", "[1]")


def closed_port() -> int:
    """A local TCP port where nothing listens (bound, then closed)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]



def test_plugins_lists_aliases():
    outcome = run_cli(["plugins"])
    assert outcome.code == 0
    header, *rows = outcome.stdout.splitlines()
    assert header.split()[-1] == "ALIASES"
    powerlaw2 = next(row for row in rows if row.split()[1:2] == ["powerlaw2"])
    assert "powerlaw2spectralmodel" in powerlaw2  # the Gammapy tag a model file may use
