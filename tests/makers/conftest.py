from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from flat_store import write_flat_store  # noqa: E402


@pytest.fixture(scope="session")
def flat_store_dir(tmp_path_factory) -> Path:
    return write_flat_store(tmp_path_factory.mktemp("flat-store"))
