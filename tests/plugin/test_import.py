"""`import xgamma` must not discover or load plugins."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_import_xgamma_loads_no_entry_points(fake_dist):
    module = fake_dist("probe-ext", "probe", "raise RuntimeError('must not be imported')\n")
    code = (
        "import sys, json, xgamma, xgamma.plugin\n"
        "print(json.dumps({'probe': any(m.startswith('_xgamma_fake_') for m in sys.modules),\n"
        "                  'manager': xgamma.plugin.get_plugin_manager.cache_info().currsize,\n"
        "                  'models': 'xgamma.models.spectral' in sys.modules}))\n"
    )
    import os

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*sys.path[:1], str(REPO)])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    state = json.loads(proc.stdout.strip().splitlines()[-1])
    assert state == {"probe": False, "manager": 0, "models": False}, state
    assert module  # the probe plugin exists on the path (it would raise if imported)
