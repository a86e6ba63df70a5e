"""The CLI contract: exit codes, and a JSON document with the same keys in every outcome."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ripdep import BUILD, errors, report
from ripdep.cli import main
from ripdep.engine import RunResult
from ripdep.host.http import Probe
from ripdep.resources import Change, Step

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = str(ROOT / "examples/hello/ripdep.toml")
KEYS = set(report.Envelope.__annotations__)  # the one definition (tests/unit/test_contract.py checks its types)


def invoke(*args):
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout


def test_version_and_help():
    assert invoke("--version") == (0, f"{BUILD}\n")
    code, out = invoke("--help")
    assert code == 0 and "deploy" in out and "init" in out


def test_exit_codes_are_distinct_and_documented():
    values = list(errors.CODE_TO_EXIT.values())
    assert len(values) == len(set(values))
    doc = (ROOT / "docs/exit-codes.md").read_text()
    for code, status in errors.CODE_TO_EXIT.items():
        assert f"| {status} | `{code}` |" in doc


@pytest.mark.parametrize("args, code, err", [
    (["deploy", "Bad;Name", "--json"], errors.EXIT_BAD_INPUT, "bad_input"),
    (["deploy", "root", "--json"], errors.EXIT_BAD_INPUT, "bad_input"),
    (["deploy", "hello", "--manifest", "/nonexistent.toml", "--json"], errors.EXIT_BAD_INPUT, "bad_input"),
    (["deploy", "zz-not-installed", "--json"], errors.EXIT_UNKNOWN_APP, "unknown_app"),
])
def test_early_failures_print_the_document(args, code, err):
    status, out = invoke(*args)
    doc = json.loads(out)
    assert status == code and doc["exit_code"] == code
    assert set(doc) == KEYS
    assert doc["failed"] is True and doc["changed"] is False and doc["version"] == report.VERSION
    assert doc["errors"][0]["code"] == err


def test_bad_manifest_key_is_named(tmp_path):
    bad = tmp_path / "m.toml"
    bad.write_text('source = "."\nstart = "x"\nportt = 1\n')
    status, out = invoke("deploy", "hello", "--manifest", str(bad), "--json")
    assert status == errors.EXIT_BAD_INPUT and "portt" in json.loads(out)["msg"]


def test_not_root_is_a_precondition(monkeypatch):
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    status, out = invoke("deploy", "hello", "--manifest", EXAMPLE, "--json")
    assert status == errors.EXIT_PRECONDITION
    assert json.loads(out)["errors"][0]["code"] == "precondition"


def fake_result(changed: bool) -> RunResult:
    changes = [Change("unit:ripdep-hello.service", "create", "create unit", diff="+x\n")] if changed else []
    r = RunResult("hello", False, [Step("unit:ripdep-hello.service", changes)], "http://127.0.0.1/hello/", 20000)
    r.health = Probe("http://127.0.0.1/hello/", ok=True, status=200)
    return r


def test_same_keys_changed_unchanged_and_failed():
    changed = report.run_document("deploy", "hello", fake_result(True), with_diff=True)
    unchanged = report.run_document("deploy", "hello", fake_result(False))
    failed = report.run_document("deploy", "hello", None, errors.HealthCheckFailed("x"))
    assert set(changed) == set(unchanged) == set(failed) == KEYS
    assert changed["changed"] is True and unchanged["changed"] is False
    assert changed["actions"] == [{"id": "unit:ripdep-hello.service", "action": "create", "detail": "create unit"}]
    assert changed["diff"] == ["+x\n"] and unchanged["diff"] == []
    assert failed["exit_code"] == errors.EXIT_HEALTH and failed["errors"][0]["code"] == "health_check_failed"
    assert set(changed["health"]) == {"url", "ok", "status", "error", "attempts", "seconds", "latency_ms"}


def test_check_mode_never_reports_changed():
    doc = report.run_document("deploy", "hello", fake_result(True), check=True)
    assert doc["changed"] is False and doc["check"] is True and len(doc["actions"]) == 1


def test_secret_type_masks_itself():
    from ripdep.secret import Secret

    s = Secret("hunter2")
    assert "hunter2" not in f"{s} {s!r} {str(s)} {[s]}"
    assert s.reveal() == "hunter2"
