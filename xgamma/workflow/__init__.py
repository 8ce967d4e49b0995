"""The reference analysis as one call, for notebooks and for ``xgamma run``.

    >>> from xgamma.workflow import run_analysis                          # doctest: +SKIP
    >>> analysis = run_analysis(yaml.safe_load(open("cta-gc-full.yaml")))  # doctest: +SKIP
    >>> analysis.fit_result, analysis.significance, analysis.distribution  # doctest: +SKIP

`run_analysis` takes a configuration mapping (the sections of ``docs/config.md``) and, in place of
sections, Python objects (observations, a geometry, models, an exclusion mask). It runs the
stages the configuration asks for (`REFERENCE_STAGES`: maps -> squashed images -> PSF + fit ->
ring background -> correlated significance -> off-pixel distribution, with iterative exclusion)
and returns an `Analysis` holding every product; given an ``output`` folder it also writes the
files of ``xgamma run``. The command line (`xgamma.cli`) only reads the YAML file and calls it.

Modules: ``config`` (schema and validation), ``inputs`` (Python objects from config sections),
``stages`` (the `Stage` records and what each computes), ``products`` (the files of each stage),
``analysis`` (`Analysis`, `run_analysis`), ``progress`` (compute with a progress bar).
"""

from __future__ import annotations

from xgamma.workflow.analysis import Analysis, run_analysis
from xgamma.workflow.config import Config, load_config, validate_config
from xgamma.workflow.stages import REFERENCE_STAGES, Stage

__all__ = ["Analysis", "run_analysis", "Config", "load_config", "validate_config", "Stage", "REFERENCE_STAGES"]
