"""Releases through the engine on the fake host (tests/unit/fakehost.py): a release per change of
code or manifest, a switch of the code link, the health-gated revert to the previous release, the
rollback pin, and the records that say what happened."""

import pytest

from fakehost import FakeHost, fake_world
from ripdep import engine, releases
from ripdep.errors import RolledBack

MANIFEST = """source = "{source}"
start = ["/usr/bin/python3", "app.py"]
health = "/healthz"
[env]
GREETING = "{greeting}"
"""


@pytest.fixture
def world(tmp_path):
    paths, source = fake_world(tmp_path, "print('v1')\n")
    host = FakeHost()

    def deploy(greeting="hello", **kw):
        manifest = tmp_path / "ripdep.toml"
        manifest.write_text(MANIFEST.format(source=source, greeting=greeting))
        return engine.deploy("shop", manifest, paths=paths, host=host, **kw)
    return paths, host, source, deploy


def records(paths, host):
    return releases.read_records(host, paths, "shop")


def live_tree(paths, host) -> str:
    return str(host.links[paths.code("shop")]).split("/", 1)[1]


def test_each_change_of_code_or_manifest_is_a_release_and_nothing_else_is(world):
    paths, host, source, deploy = world
    deploy()
    [first] = records(paths, host)
    assert first.outcome == "live" and host.states["shop"].release == first.id and live_tree(paths, host) == first.tree
    assert not deploy().changed and len(records(paths, host)) == 1
    deploy(greeting="hi")  # the manifest alone: a new release on the same tree, no tree built
    second = records(paths, host)[-1]
    assert second.tree == first.tree and second.changed == "manifest" and len(host.trees_built) == 1
    (source / "app.py").write_text("print('v2')\n")
    result = deploy(greeting="hi")
    third = records(paths, host)[-1]
    assert third.changed == "code" and third.tree != first.tree and live_tree(paths, host) == third.tree
    assert [r.outcome for r in records(paths, host)] == ["superseded", "superseded", "live"]
    assert ("service:ripdep-shop.service", "restart") in [(c.id, c.action) for s in result.steps for c in s.changes]


def test_check_plans_a_release_and_writes_nothing(world):
    paths, host, source, deploy = world
    deploy()
    (source / "app.py").write_text("print('v2')\n")
    host.mutations.clear()
    planned = deploy(check=True)
    assert any(c.action == "switch" for s in planned.steps for c in s.changes) and host.mutations == []


def test_a_release_that_fails_its_health_check_is_switched_back(world):
    paths, host, source, deploy = world
    deploy()
    good = records(paths, host)[0]
    (source / "app.py").write_text("print('broken')\n")
    host.healthy = lambda h: live_tree(paths, h) == good.tree  # only the old code answers
    with pytest.raises(RolledBack) as caught:
        deploy()
    error = caught.value
    assert f"switched back to release {good.id}" in error.message and error.exit_status == 12
    assert error.result.changed and error.result.health.ok  # the host changed; the old release serves
    assert live_tree(paths, host) == good.tree and host.states["shop"].release == good.id
    outcomes = {r.id: r.outcome for r in records(paths, host)}
    assert outcomes[good.id] == "live" and list(outcomes.values()).count("rolled_back") == 1
    failed = next(r for r in records(paths, host) if r.outcome == "rolled_back")
    assert "health check" in failed.reason
    # pinned: a deploy without a manifest (config set, restore) keeps the good release
    assert host.states["shop"].pinned
    paths.manifest("shop").parent.mkdir(parents=True, exist_ok=True)
    paths.manifest("shop").write_bytes(host.files[paths.manifest("shop")].content)
    host.healthy = True
    again = engine.deploy("shop", None, paths=paths, host=host)
    assert not again.changed and live_tree(paths, host) == good.tree
    assert any("pinned by a rollback" in s.note for s in again.steps)


def test_a_first_deploy_has_nothing_to_go_back_to(world):
    paths, host, source, deploy = world
    host.healthy = False
    with pytest.raises(Exception) as caught:
        deploy()
    assert caught.value.exit_status == 4 and records(paths, host)[0].outcome == "live"


def test_old_releases_are_pruned_but_never_the_live_or_the_previous_one(world):
    paths, host, source, deploy = world
    paths.host_config.write_text(paths.host_config.read_text().replace("releases_keep = 5", "releases_keep = 2"))
    for i in range(5):
        (source / "app.py").write_text(f"print({i})\n")
        deploy()
    kept = records(paths, host)
    assert len(kept) == 2 and kept[-1].outcome == "live"
    assert {paths.releases_root("shop") / r.tree for r in kept} <= host.dirs
