"""ruff (pyflakes and bugbear rules) over the code and the tests, and mypy over the package, as tests."""

import importlib.util
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (tests/setup.sh installs it)")
    proc = subprocess.run([ruff, "check", "--output-format", "concise", "ripdep", "tests", "bench", "examples", "ansible"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_clean():
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (tests/setup.sh installs it)")
    # settings ([tool.mypy]: python_version, files = ripdep) come from pyproject.toml; the cache
    # goes outside the checkout so the test leaves nothing behind in it
    cache = Path(tempfile.gettempdir()) / "ripdep-mypy-cache"
    proc = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(cache)],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_test_modules_have_unique_names():
    # pytest imports test modules by basename (rootdir-relative, no packages): two test_x.py in
    # tests/unit and tests/integration make the whole run fail at collection
    names = [p.name for p in (ROOT / "tests").rglob("test_*.py")]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


def test_integration_tests_import_conftest_at_module_level_only():
    # tests/unit and tests/integration each have a conftest.py, both imported as "conftest": an
    # import inside a test function runs after both were loaded and gets whichever came last
    inside = [f"{p.name}:{n}" for p in (ROOT / "tests" / "integration").glob("test_*.py")
              for n, line in enumerate(p.read_text().splitlines(), 1) if line.startswith(" ") and "from conftest" in line]
    assert not inside, inside
