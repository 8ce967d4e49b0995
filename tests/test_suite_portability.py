"""The test suite itself runs from any working directory, not only from the repository's root, and
leaves nothing in the folder it starts in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def _environ_without(*names: str) -> dict[str, str]:
    """This process's environment for a pytest in a subprocess, less ``names`` and what tests/conftest.py
    sets (HYPOTHESIS_STORAGE_DIRECTORY), so that the subprocess's conftest sets it again."""
    dropped = {*names, "HYPOTHESIS_STORAGE_DIRECTORY"}
    return {key: value for key, value in os.environ.items() if key not in dropped}


@pytest.mark.slow
def test_the_suite_collects_from_another_working_directory(tmp_path):
    # From the repository's root, ``python -m pytest`` puts the root on sys.path, so a test module
    # could import ``tests.<...>`` there and nowhere else (as ``pytest_plugins`` once did): a user
    # running ``python -m pytest /path/to/xgamma/tests`` from elsewhere got a collection error.
    # Without PYTHONPATH: one naming the repository would hide such an import.
    env = _environ_without("PYTHONPATH")
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", str(TESTS)],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "error" not in proc.stdout.lower().splitlines()[-1], proc.stdout[-3000:]
    assert f"{TESTS.name}/{Path(__file__).name}::test_the_suite_collects_from_another_working_directory" in proc.stdout
    assert not list(tmp_path.iterdir()), "left in the folder pytest started in"  # e.g. pytest-benchmark's


def test_data_found_from_another_folder(request, monkeypatch, tmp_path):
    """Run alone by the next test, from a folder where ``$XGAMMA_DATA`` is a relative path."""
    monkeypatch.chdir(tmp_path)  # a test that moves before it first asks for the data
    data = request.getfixturevalue("data_dir")
    assert (data / "cta-1dc").is_dir()


@pytest.mark.slow
def test_a_relative_xgamma_data_is_read_from_the_folder_pytest_starts_in(data_dir, tmp_path):
    (tmp_path / "shared").symlink_to(data_dir, target_is_directory=True)
    env = {**_environ_without(), "XGAMMA_DATA": "shared"}
    tests = [f"{Path(__file__).resolve()}::test_data_found_from_another_folder",
             f"{TESTS / 'reliability' / 'test_properties.py'}::test_angle_parser"]  # and a Hypothesis test
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "2 passed" in proc.stdout
    assert [path.name for path in tmp_path.iterdir()] == ["shared"]  # no .hypothesis/ left here
