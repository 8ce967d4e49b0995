"""The reliability corpus: damaged data stores and broken configurations run through ``xgamma run``.

Every case must end cleanly: one ``xgamma: error:`` line naming the file and the HDU / column /
key at fault and no product left behind, or (input merely odd) a result equal to the undamaged
run's. A traceback fails the test (the exception escapes ``main``), a hang hits the timeout.
"""

from __future__ import annotations

import pytest
import yaml
from corpus_config_cases import CONFIG_CASES, ConfigCase
from corpus_dl3_cases import DL3_CASES, Case
from corpus_runner import Error, Same, assert_no_products, assert_same_products, base_config, run_cli
from corpus_stores import copy_store


def check_outcome(case, outcome, output, base_output, store) -> None:
    assert "Traceback" not in outcome.stderr
    expect = case.expect
    if isinstance(expect, Error):
        assert outcome.code == 1, f"expected a failure, got exit code {outcome.code}: {outcome.stderr}"
        assert len(outcome.error_lines) == 1, outcome.stderr
        line = outcome.error_lines[0].lower()
        for needle in expect.needles:
            needle = needle(store) if callable(needle) else needle
            assert needle.lower() in line, f"{needle!r} not named in: {outcome.error_lines[0]}"
        assert_no_products(output)
        return
    assert outcome.code == 0, outcome.stderr
    for needle in expect.warns:
        assert any(needle.lower() in line.lower() for line in outcome.warning_lines), outcome.stderr
    if isinstance(expect, Same):
        assert_same_products(output, base_output)
    else:
        expect.check(output, base_output, outcome)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", DL3_CASES, ids=lambda c: c.name)
def test_damaged_store(case: Case, base_stores, base_results, tmp_path):
    store = copy_store(base_stores[case.store], tmp_path / "store")
    case.damage(store)
    config = base_config(store, case.stages)
    if case.config is not None:
        config = case.config(config)
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    output = tmp_path / "out"
    outcome = run_cli(["run", str(config_path), "--output", str(output), "--quiet"])
    base_output = base_results[case.store, case.stages]
    if case.config is not None and isinstance(case.expect, Same):
        pytest.fail("a case with its own configuration has no base run to compare with")
    check_outcome(case, outcome, output, base_output, store)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", CONFIG_CASES, ids=lambda c: c.name)
def test_broken_config(case: ConfigCase, base_stores, base_results, tmp_path):
    store = base_stores["hess"]
    edited = case.edit(base_config(store, case.stages))
    config_path = tmp_path / "config.yaml"
    config_path.write_bytes(edited if isinstance(edited, bytes) else yaml.safe_dump(edited).encode())
    output = tmp_path / "out"
    outcome = run_cli(["run", str(config_path), "--output", str(output), "--quiet"])
    check_outcome(case, outcome, output, base_results["hess", case.stages], store)
