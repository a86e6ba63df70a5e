"""ruff (pyflakes and bugbear rules) over the code and the tests, as a test."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (tests/setup.sh installs it)")
    proc = subprocess.run([ruff, "check", "--output-format", "concise", "ripdep", "tests", "bench", "examples"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
