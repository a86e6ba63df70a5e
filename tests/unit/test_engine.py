"""The engine end to end against an in-memory host (tests/unit/fakehost.py): the real planner, the
real dispatcher, the real templates; only the machine is fake. These prove the wiring: a second run
plans nothing, --check and refused runs write nothing, a step that does not take is caught, secrets
never reach a diff, verbs are desired states."""

import json
import pytest

from fakehost import FakeHost, fake_world
from ripdep import engine, report
from ripdep.errors import ApplyFailed, PreconditionFailed, RipdepError, ValidationFailed
from ripdep.state import AppState

MANIFEST = """source = "{source}"
start = ["/usr/bin/python3", "app.py"]
health = "/healthz"
[env]
GREETING = "{greeting}"
[secrets]
TOKEN = "generate"
"""


@pytest.fixture
def world(tmp_path):
    """(paths, host, write_manifest): a host config on disk under tmp_path, everything else fake."""
    paths, source = fake_world(tmp_path)

    def write(greeting="hello", extra="", top=""):
        path = tmp_path / "ripdep.toml"
        path.write_text(top + MANIFEST.format(source=source, greeting=greeting) + extra)
        return path
    return paths, FakeHost(), write


def deploy(world, manifest=None, **kw):
    paths, host, write = world
    return engine.deploy("shop", manifest or write(), paths=paths, host=host, **kw)


def test_a_deploy_converges_and_a_second_one_plans_and_does_nothing(world):
    paths, host, _ = world
    first = deploy(world)
    assert first.changed and first.health.ok
    assert host.units["ripdep-shop.service"] == "active"
    assert host.roles["shop"]["comment"] == "managed by ripdep: app shop" and not host.dbs["shop"]["public"]
    host.mutations.clear()
    second = deploy(world)
    assert not second.changed and host.mutations == []


def test_check_writes_nothing_and_tells_what_it_would_do(world):
    paths, host, _ = world
    result = deploy(world, check=True)
    ids = [c.id for s in result.steps for c in s.changes]
    assert "unit:ripdep-shop.service" in ids and "service:ripdep-shop.service" in ids
    assert host.mutations == [] and host.states == {}


@pytest.mark.parametrize("fault", ["unit", "exposure", "caddy", "calendar", "locale", "root", "route"])
def test_a_refused_deploy_writes_nothing(world, fault):
    paths, host, write = world
    manifest = write()
    if fault == "unit":
        host.verify_problems = ["Unknown key name 'Bogus'"]
    elif fault == "exposure":
        host.score = 2.5
    elif fault == "caddy":
        host.caddy_error = "the new Caddy configuration is invalid"
    elif fault == "calendar":
        manifest = write(extra='[backup]\nschedule = "every full moon"\n')
    elif fault == "locale":
        manifest = write(top='database_locale = "xx_XX.bogus"\n')
    elif fault == "root":
        host.root = False
    elif fault == "route":
        host.states["other"] = AppState("other", port=20000, route="/shop/")
    with pytest.raises(RipdepError) as e:
        deploy(world, manifest)
    assert e.value.code == {"unit": "validation_failed", "exposure": "validation_failed", "caddy": "validation_failed",
                            "calendar": "bad_input", "locale": "bad_input", "root": "precondition",
                            "route": "conflict"}[fault], e.value
    assert host.mutations == [], fault
    assert set(host.states) <= {"other"}


def test_a_step_that_does_not_take_is_a_convergence_error(world):
    paths, host, _ = world
    host.drop_writes = {paths.env_file("shop")}
    with pytest.raises(ApplyFailed, match="did not converge: env:shop"):
        deploy(world)


def test_a_crash_mid_apply_converges_on_the_rerun(world):
    paths, host, _ = world
    host.fail_at = 9
    with pytest.raises(ApplyFailed):
        deploy(world)
    assert deploy(world).health.ok
    host.mutations.clear()
    assert not deploy(world).changed and host.mutations == []


def test_a_secret_never_reaches_a_diff_or_the_json(world):
    paths, host, write = world
    deploy(world)
    token = host.store[(paths.secrets("shop"), "TOKEN")].reveal()
    # a changed env value, a removed secret, and every secret moving to credentials
    changed = deploy(world, write("changed"), check=True)
    removed_path = paths.root.parent / "removed.toml"
    removed_path.write_text(MANIFEST.format(source=paths.root.parent / "src", greeting="x").replace(
        'TOKEN = "generate"\n', ""))
    removed = deploy(world, removed_path, check=True)
    credentials_path = paths.root.parent / "credentials.toml"
    credentials_path.write_text('delivery = "credentials"\n' + MANIFEST.format(source=paths.root.parent / "src",
                                                                                greeting="x"))
    moved = deploy(world, credentials_path, check=True)
    for result in (changed, removed, moved):
        diffs = [c.diff for s in result.steps for c in s.changes if c.diff]
        assert any("GREETING" in d for d in diffs)  # positive control: the env diff is there
        doc = json.dumps(report.run_document("deploy", "shop", result, check=True, with_diff=True))
        assert token not in "".join(diffs) and token not in doc
        assert token not in repr(result.steps)


def test_an_env_change_plans_exactly_one_restart(world):
    deploy(world)
    _, _, write = world
    result = deploy(world, write("changed"), check=True)
    actions = [(c.id, c.action.value) for s in result.steps for c in s.changes]
    assert ("service:ripdep-shop.service", "restart") in actions
    assert [a for a in actions if a[1] in ("start", "restart")] == [("service:ripdep-shop.service", "restart")]


def test_stop_and_start_are_desired_states_through_the_engine(world):
    paths, host, _ = world
    deploy(world)
    # the verbs read the installed manifest from disk: put the fake's copy there
    paths.manifest("shop").parent.mkdir(parents=True, exist_ok=True)
    paths.manifest("shop").write_bytes(host.files[paths.manifest("shop")].content)
    checked = engine.converge("shop", verb=engine.STOP, paths=paths, host=host, check=True, lock=False)
    assert [c.action.value for s in checked.steps for c in s.changes] == ["update", "disable", "daemon-reload", "stop"]
    assert host.units["ripdep-shop.service"] == "active"  # --check: still running
    stopped = engine.converge("shop", verb=engine.STOP, paths=paths, host=host)
    assert stopped.health is None and host.units["ripdep-shop.service"] == "inactive"
    assert host.states["shop"].desired == "stopped" and not host.is_link(
        paths.units / "multi-user.target.wants/ripdep-shop.service")
    host.mutations.clear()
    assert not deploy(world).changed and host.mutations == []  # a deploy keeps it stopped
    started = engine.converge("shop", verb=engine.START, paths=paths, host=host)
    assert started.health.ok and host.states["shop"].desired == "running"
    restarted = engine.converge("shop", verb=engine.RESTART, paths=paths, host=host)
    assert [c.action.value for s in restarted.steps for c in s.changes] == ["restart"]


def test_a_refused_deploy_of_a_new_app_leaves_no_claim_and_no_port(world):
    paths, host, write = world
    host.verify_problems = ["broken"]
    with pytest.raises(ValidationFailed):
        deploy(world)
    assert host.states == {} and host.mutations == []
    host.verify_problems = []
    assert deploy(world).health.ok and host.states["shop"].port


def test_unknown_app_for_a_verb(world):
    paths, host, _ = world
    with pytest.raises(RipdepError) as e:
        engine.converge("ghost", verb=engine.START, paths=paths, host=host)
    assert e.value.code == "unknown_app" and host.mutations == []


def test_destroy_is_desired_absent_through_the_same_dispatcher(world):
    paths, host, _ = world
    deploy(world)
    paths.manifest("shop").parent.mkdir(parents=True, exist_ok=True)
    paths.manifest("shop").write_bytes(host.files[paths.manifest("shop")].content)
    host.mutations.clear()
    token = host.store[(paths.secrets("shop"), "TOKEN")].reveal()
    planned = engine.remove("shop", check=True, paths=paths, host=host)
    ids = {c.id for s in planned.steps for c in s.changes}
    diffs = "".join(c.diff for s in planned.steps for c in s.changes)
    assert "-ExecStart=" in diffs and "-TOKEN=********" in diffs and token not in diffs
    assert {"route:shop", "unit:ripdep-shop.service", "env:shop", "database:shop", "role:shop", "user:shop",
            "state:shop", "manifest:shop"} <= ids
    assert host.mutations == []  # --check
    refused = []

    def guard(check):
        refused.append(check)
        raise PreconditionFailed("no fresh verified backup")
    with pytest.raises(PreconditionFailed):
        engine.remove("shop", paths=paths, host=host, guard=guard)
    assert refused == [False] and host.mutations == []  # the guard runs before anything changes
    engine.remove("shop", paths=paths, host=host)
    assert host.states == {} and host.roles == {} and host.dbs == {} and "shop" not in host.users
    assert not [p for p in host.files if "shop" in str(p)]
    assert host.units["ripdep-shop.service"] == "inactive"


def test_a_source_file_not_readable_by_every_user_is_refused_before_anything_changes(world):
    paths, host, write = world
    manifest = write()
    secret = manifest.parent / "src" / "passwords.dat"
    secret.write_text("S3cr3t\n")
    secret.chmod(0o600)
    with pytest.raises(RipdepError, match="passwords.dat is not readable by every user") as e:
        deploy(world, manifest)
    assert e.value.code == "bad_input" and host.mutations == []
    secret.chmod(0o644)  # control: readable by all, it is code like any other
    assert deploy(world, manifest).health.ok


def test_a_deploy_that_fails_its_health_check_reports_what_it_changed(world):
    paths, host, _ = world
    host.healthy = False
    with pytest.raises(RipdepError) as e:
        deploy(world)
    assert e.value.code == "health_check_failed"
    doc = report.run_document("deploy", "shop", e.value.result, e.value)
    assert doc["failed"] and doc["exit_code"] == 4 and doc["changed"] and doc["actions"]
    assert doc["url"] == "http://127.0.0.1/shop/" and doc["port"] and doc["health"]["status"] == 502


def test_a_failure_mid_apply_reports_only_what_was_applied(world):
    paths, host, _ = world
    host.fail_at = 4
    with pytest.raises(ApplyFailed) as e:
        deploy(world)
    applied = [c.id for s in e.value.result.steps for c in s.changes]
    assert applied and len(applied) < 4 and "unit:ripdep-shop.service" not in applied
