"""Unit tests never write the real host's audit log, spool or metrics: the CLI's fleet hook
(ripdep/fleet.py) runs only in a test that pointed PATHS at its own folder (test_contract.py)."""

import pytest

from ripdep import fleet
from ripdep.paths import PATHS

REAL_ROOT = PATHS.root


@pytest.fixture(autouse=True)
def no_fleet_hook_on_the_real_host(monkeypatch):
    real = fleet.after_command

    def guarded(*args, **kwargs):
        if PATHS.root != REAL_ROOT:
            real(*args, **kwargs)

    monkeypatch.setattr(fleet, "after_command", guarded)

