"""plan/apply fan-out and --like, as pure logic: the engine is replaced by a function that records
the order apps ran in and fails where the test says (the real engine runs in
tests/integration/test_fanout.py)."""

import threading
from pathlib import Path

import pytest

from ripdep import fanout, like
from ripdep.engine import RunResult
from ripdep.errors import BadInput, ReleaseFailed, UnknownApp
from ripdep.paths import Paths
from ripdep.resources import Change, Step

APPS = [f"a{i:02d}" for i in range(1, 13)]


@pytest.fixture
def engine(monkeypatch, tmp_path):
    ran: list[str] = []
    lock = threading.Lock()
    failing = set()

    def deploy(app, manifest, check=False, paths=None, **kw):
        with lock:
            ran.append(app)
        if app in failing:
            raise ReleaseFailed(f"release of {app} failed")
        return RunResult(app, check, [Step(f"code:{app}", [Change(f"code:{app}", "switch", "switch")])])
    monkeypatch.setattr(fanout.engine, "deploy", deploy)
    return ran, failing, Paths(tmp_path)


def test_the_canaries_go_first_and_the_first_failure_stops_the_fan_out(engine):
    ran, failing, paths = engine
    failing.add("a05")
    out = {o.app: o.outcome for o in fanout.apply(APPS, parallel=1, canary=2, paths=paths, runner=fanout.in_process)}
    assert ran[:2] == ["a01", "a02"] and ran[-1] == "a05"
    assert [out[a] for a in APPS] == ["applied"] * 4 + ["failed"] + ["skipped"] * 7


def test_a_failed_canary_stops_everything_and_keep_going_does_not(engine):
    ran, failing, paths = engine
    failing.add("a01")
    out = fanout.apply(APPS, parallel=4, canary=2, paths=paths, runner=fanout.in_process)
    assert ran == ["a01"] and [o.outcome for o in out].count("skipped") == 11
    ran.clear()
    out = fanout.apply(APPS, parallel=4, canary=2, keep_going=True, paths=paths, runner=fanout.in_process)
    assert sorted(ran) == APPS and [o.outcome for o in out].count("failed") == 1


def test_parallel_runs_never_start_an_app_after_a_failure(engine):
    ran, failing, paths = engine
    failing.add("a03")
    out = {o.app: o.outcome for o in fanout.apply(APPS, parallel=3, paths=paths, runner=fanout.in_process)}
    assert out["a03"] == "failed" and out["a12"] == "skipped"
    assert all(out[a] in ("applied", "failed") for a in ran) and all(out[a] == "skipped" for a in APPS if a not in ran)


@pytest.mark.parametrize("parallel, canary", [(0, 0), (-1, 0), (1, -1)])
def test_bad_fan_out_numbers_are_refused(engine, parallel, canary):
    ran, _, paths = engine
    with pytest.raises(BadInput):
        fanout.apply(APPS, parallel=parallel, canary=canary, paths=paths, runner=fanout.in_process)
    assert ran == []


def test_plan_reports_changes_busy_and_in_sync(monkeypatch, tmp_path):
    from ripdep.errors import LockHeld

    def deploy(app, manifest, check=False, paths=None, **kw):
        assert check
        if app == "busy":
            raise LockHeld("another run holds busy")
        steps = [Step("env:x", [Change("env:x", "update", "update env")])] if app == "drifted" else []
        return RunResult(app, True, steps)
    monkeypatch.setattr(fanout.engine, "deploy", deploy)
    out = {o.app: o.outcome for o in fanout.plan(["ok", "drifted", "busy"], Paths(tmp_path))}
    assert out == {"ok": "in_sync", "drifted": "changes", "busy": "busy"}


def test_select_refuses_unknown_apps_and_both_names_and_all(monkeypatch, tmp_path):
    monkeypatch.setattr(fanout, "installed_apps", lambda paths: ["a01", "a02"])
    monkeypatch.setattr(fanout.engine, "require_root", lambda: None)
    assert fanout.select((), False) == ["a01", "a02"]
    with pytest.raises(UnknownApp):
        fanout.select(("a01", "nope"), False)
    with pytest.raises(BadInput):
        fanout.select(("a01",), True)
    with pytest.raises(BadInput, match="--all"):
        fanout.select((), False, need_choice=True)


# --- --like ------------------------------------------------------------------------------------

def installed(tmp_path, text: str) -> Paths:
    paths = Paths(tmp_path / "root")
    paths.manifest("shop-a").parent.mkdir(parents=True)
    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    paths.manifest("shop-a").write_text(f'source = "{source}"\nstart = ["/usr/bin/python3", "app.py"]\n' + text)
    return paths


def test_a_copy_keeps_settings_and_gets_its_own_route_and_ssm_names(tmp_path):
    paths = installed(tmp_path, '[route]\npath = "/shop-a/"\n[env]\nA = "1"\n[secrets]\nK = "generate"\n'
                                'S = "ssm:/ripdep/shop-a/stripe"\nSHARED = "ssm:/ripdep/common/key"\n')
    text = like.manifest_like("shop-b", "shop-a", ("A=2", "B=x y"), paths)
    assert "/shop-a/" not in text and 'S = "ssm:/ripdep/shop-b/stripe"' in text
    assert 'SHARED = "ssm:/ripdep/common/key"' in text and 'K = "generate"' in text
    assert 'A = "2"' in text and 'B = "x y"' in text


def test_a_copy_of_an_app_with_its_own_host_needs_its_own(tmp_path):
    paths = installed(tmp_path, '[route]\nhost = "a.example.com"\n')
    with pytest.raises(BadInput, match="give shop-b one"):
        like.manifest_like("shop-b", "shop-a", (), paths)
    text = like.manifest_like("shop-b", "shop-a", ("route.host=b.example.com",), paths)
    assert 'host = "b.example.com"' in text and "a.example.com" not in text


@pytest.mark.parametrize("new, sets, error", [
    ("shop-a", (), "names the app being deployed"), ("Bad;Name", (), "invalid app name"),
    ("shop-b", ("NOEQUALS",), "KEY=VALUE"), ("shop-b", ("BAD KEY=1",), "--set BAD KEY"),
    ("shop-b", ("route.path=/x",), "route.path"), ("shop-b", ("PORT=1",), "'PORT' is set by ripdep"),
])
def test_bad_like_input_is_refused(tmp_path, new, sets, error):
    paths = installed(tmp_path, "")
    with pytest.raises(BadInput, match=error):
        like.manifest_like(new, "shop-a", sets, paths)


def test_like_of_an_unknown_app_is_refused(tmp_path):
    with pytest.raises(UnknownApp):
        like.manifest_like("shop-b", "nope", (), Paths(Path(tmp_path)))
