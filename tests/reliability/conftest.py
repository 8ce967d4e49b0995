"""Fixtures of the reliability corpus: small base stores, their configurations and reference runs."""

from __future__ import annotations

import json

import pytest
from corpus_runner import BASE_RUNS, base_config, run_cli
from corpus_stores import build_store


@pytest.fixture(scope="session")
def base_stores(data_dir, tmp_path_factory) -> dict:
    """The corpus's base stores (written once per session from ``$XGAMMA_DATA``)."""
    root = tmp_path_factory.mktemp("corpus-base")
    return {
        kind: build_store(data_dir / source, obs_ids, root / kind, kind=kind, max_events=max_events)
        for kind, (source, obs_ids, max_events) in BASE_RUNS.items()
    }


@pytest.fixture(scope="session")
def base_results(base_stores, tmp_path_factory) -> dict:
    """``{(store kind, stages): output folder}`` of runs on the unmodified base stores."""
    root = tmp_path_factory.mktemp("corpus-reference")
    results = {}
    for kind, store in base_stores.items():
        for stages in ("maps", "full"):
            out = root / f"{kind}-{stages}"
            config = root / f"{kind}-{stages}.yaml"
            config.write_text(json.dumps(base_config(store, stages)))
            outcome = run_cli(["run", str(config), "--output", str(out), "--quiet"])
            assert outcome.code == 0, outcome.stderr
            results[kind, stages] = out
    return results
