"""Interrupted runs (SIGINT, SIGKILL at random moments) leave no product that looks complete.

Each run writes into a folder that already holds a complete earlier run: whatever the moment of
the signal, the folder afterwards holds that earlier run unchanged, or (the signal came too late)
the new complete run; never a mix, never a manifest listing missing files. A rerun into the folder
then removes every leftover.

The signals land once the run is under way (its staging folder exists): a Ctrl-C during Python's
own start-up, while xarray and astropy are imported and before xgamma's code runs, is the
interpreter's to report (a KeyboardInterrupt traceback; nothing is written yet).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from corpus_runner import base_config, run_cli

from xgamma.workflow.staging import MANIFEST, read_manifest

SEED = 20261126


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Visible files of the folder and their contents (hidden leftovers of a killed run excluded)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)}


def _assert_consistent(folder: Path) -> None:
    manifest = read_manifest(folder)
    assert manifest is not None and manifest["complete"]
    for name, info in manifest["files"].items():
        assert (folder / name).exists(), f"the manifest lists {name}, which is missing"
        if (folder / name).is_file():
            assert (folder / name).stat().st_size == info["bytes"]


def _start(config: Path, output: Path, *extra: str) -> subprocess.Popen:
    """Start ``xgamma run`` and return once it is writing (its staging folder exists) or has ended."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "xgamma.cli.main", "run", str(config), "--output", str(output),
                                "--quiet", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if output.is_dir() and any(p.name.startswith(".xgamma-run-") for p in output.iterdir()):
            break
        time.sleep(0.01)
    return process


@pytest.fixture(scope="module")
def full_config(base_stores, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("interrupts") / "config.yaml"
    path.write_text(yaml.safe_dump(base_config(base_stores["hess"], "full")))
    return path


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_interrupted_runs_leave_the_earlier_run_or_a_complete_new_one(full_config, base_results, tmp_path):
    reference = base_results["hess", "full"]
    # How long a run takes here once under way: signals land anywhere in it.
    process = _start(full_config, tmp_path / "timing")
    start = time.perf_counter()
    assert process.wait(timeout=200) == 0, process.stderr.read()
    duration = time.perf_counter() - start
    rng = random.Random(SEED)
    plan = [(signal.SIGINT, rng.uniform(0, duration)) for _ in range(3)]
    plan += [(signal.SIGKILL, rng.uniform(0, duration)) for _ in range(3)]
    for k, (signum, delay) in enumerate(plan):
        folder = tmp_path / f"run{k}"
        shutil.copytree(reference, folder)
        before = _snapshot(folder)
        process = _start(full_config, folder)
        time.sleep(delay)
        process.send_signal(signum)
        code = process.wait(timeout=200)
        stderr = process.stderr.read()
        label = f"{signal.Signals(signum).name} after {delay:.2f} s (seed {SEED}, exit {code})"
        assert "Traceback" not in stderr, f"{label}: {stderr}"
        # The earlier run unchanged, or (the signal came too late) a complete new run.
        if _snapshot(folder) != before:
            manifest = read_manifest(folder)
            assert manifest is not None, f"{label}: the earlier run was changed and no new run is complete"
            assert manifest["created"] != json.loads(before[MANIFEST])["created"], label
        _assert_consistent(folder)
        if code == 130:  # xgamma's handler ran: one line, and the staging folder is gone
            assert stderr.strip() == "xgamma: interrupted", f"{label}: {stderr}"
            hidden = [p.name for p in folder.iterdir() if p.name.startswith(".")]
            assert not hidden, f"{label}: SIGINT left {hidden}"
        elif signum == signal.SIGINT:  # finished, or hit while the interpreter shut down
            assert code in (0, -signal.SIGINT), f"{label}: {stderr}"
        else:
            assert code in (0, -signal.SIGKILL), label
        # The next run removes whatever a killed run left behind.
        outcome = run_cli(["run", str(full_config), "--output", str(folder), "--quiet"])
        assert outcome.code == 0, outcome.stderr
        assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]
        _assert_consistent(folder)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigint_during_a_distributed_run(full_config, base_results, tmp_path):
    """Ctrl-C while a local dask.distributed cluster computes: one line, the cluster closed, nothing new."""
    folder = tmp_path / "out"
    shutil.copytree(base_results["hess", "full"], folder)
    before = _snapshot(folder)
    process = _start(full_config, folder, "--workers", "2")
    time.sleep(0.5)  # the cluster is starting or computing
    process.send_signal(signal.SIGINT)
    code = process.wait(timeout=200)
    stderr = process.stderr.read()
    assert "Traceback" not in stderr, stderr
    _assert_consistent(folder)
    if code == 130:
        assert stderr.strip().splitlines()[-1] == "xgamma: interrupted", stderr
        assert _snapshot(folder) == before
    else:  # the run had finished (or the interpreter was shutting down)
        assert code in (0, -signal.SIGINT), stderr
