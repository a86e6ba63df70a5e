"""Releases in the real systemd container (issue 11): a tree per code change with hard links, the
release phase behind a verified backup, the health-gated switch with its automatic revert and watch
window, rollback (with and without data), and what `releases` and `status` say."""

import json

import pytest

from conftest import App, ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "release"


class ReleasedApp(App):
    """An app deployed from its own copy of the fixture, whose VERSION a test rewrites."""

    def __init__(self, ct, name: str, extra: str = ""):
        super().__init__(ct, name)
        self.source = f"/srv/src/{name}"
        self.extra = extra
        ct.sh(f"rm -rf {self.source} && mkdir -p /srv/src && cp -r {FIXTURE} {self.source} && chmod -R o+rX {self.source}",
              check=True)

    def text(self) -> str:
        return (f'source = "{self.source}"\nstart = ["/usr/bin/python3", "app.py"]\nhealth = "/healthz"\n'
                f'release = ["/usr/bin/python3", "migrate.py"]\n{self.extra}')

    def ship(self, version: str) -> tuple[int, dict]:
        self.ct.write(f"{self.source}/VERSION", version + "\n")
        return self.deploy(self.text())

    def serving(self) -> dict:
        return self.ct.get_json(f"{self.url}version")

    def releases(self) -> list[dict]:
        return json.loads(self.ct.ripdep("releases", self.name, "--json").stdout)["data"]["releases"]


@pytest.fixture
def rel(ct, request):
    made = []

    def make(name: str, extra: str = "") -> ReleasedApp:
        app = ReleasedApp(ct, name, extra)
        made.append(app)
        return app
    yield make
    for app in made:
        ct.sh(f"ripdep stop {app.name} >/dev/null 2>&1 || true")


def test_each_code_change_is_a_release_sharing_unchanged_files(ct, rel):
    app = rel("rel-trees")
    assert app.ship("ok 1")[0] == 0
    code, doc = app.ship("ok 2")
    assert code == 0, doc
    assert app.serving()["version"] == "ok 2" and app.serving()["schema"] == 2
    listed = app.releases()
    assert [r["live"] for r in listed] == [False, True] and listed[0]["previous"]
    assert [r["outcome"] for r in listed] == ["superseded", "live"]
    link = ct.run("readlink", "/srv/ripdep/rel-trees", check=True).stdout.strip()
    assert link == f"rel-trees.releases/{listed[1]['tree']}"
    # unchanged files are the same inode in both trees; the changed one is not
    inode = "stat -c %i /srv/ripdep/rel-trees.releases/{}/{}"
    for name, same in (("app.py", True), ("VERSION", False)):
        first, second = (ct.sh(inode.format(r["tree"], name), check=True).stdout for r in listed)
        assert (first == second) is same, name
    # the tree is root's; the app cannot change it
    assert ct.run("stat", "-c", "%U %a", f"/srv/ripdep/rel-trees.releases/{listed[1]['tree']}/app.py",
                  check=True).stdout.split() == ["root", "640"]
    as_app = ["systemd-run", "--wait", "--pipe", "--quiet", "--uid=rel-trees", "--gid=rel-trees", "/bin/sh", "-c"]
    assert ct.run(*as_app, "echo x >> /srv/ripdep/rel-trees/app.py").returncode != 0
    # nothing changed: no release, no restart
    code, doc = app.deploy(app.text())
    assert code == 0 and not doc["changed"] and len(app.releases()) == 2, doc


def test_the_release_phase_runs_behind_a_verified_backup_and_its_failure_keeps_the_old_release(ct, rel):
    app = rel("rel-phase")
    assert app.ship("ok 1")[0] == 0
    backups = len(json.loads(ct.ripdep("backup", "list", "rel-phase", "--json").stdout)["data"]["backups"])
    code, doc = app.ship("ok 2")
    assert code == 0, doc
    after = json.loads(ct.ripdep("backup", "list", "rel-phase", "--json").stdout)["data"]["backups"]
    assert len(after) == backups + 1 and after[-1]["verified"]
    assert app.releases()[-1]["backup"] == after[-1]["name"] and app.releases()[-1]["release_ran"]
    pid = app.serving()["pid"]
    code, doc = app.ship("failmigrate 3")
    assert code == 13, doc
    error = doc["errors"][0]
    assert "release command" in error["message"] and "still serves" in error["message"]
    assert any("column 'price' has NULLs" in d for d in error["details"])  # its output, in the report
    assert app.serving() == {"version": "ok 2", "schema": 2, "pid": pid}  # not switched, not restarted
    journal = ct.sh("journalctl --no-pager -o cat | grep -c \"column 'price' has NULLs\"").stdout.strip()
    assert int(journal) >= 1


def test_a_release_that_fails_its_health_check_is_switched_back(ct, rel):
    app = rel("rel-revert")
    assert app.ship("ok 1")[0] == 0
    code, doc = app.ship("unhealthy 2")
    assert code == 12, doc
    error = doc["errors"][0]
    assert error["code"] == "rolled_back" and "switched back to release" in error["message"]
    assert any("database may be migrated" in d for d in error["details"])  # its release phase had run
    assert doc["changed"] and doc["health"]["ok"]
    assert app.serving()["version"] == "ok 1"
    listed = app.releases()
    assert [r["outcome"] for r in listed] == ["live", "rolled_back"] and listed[0]["live"]
    row = json.loads(ct.ripdep("status", "rel-revert", "--json").stdout)["data"]["apps"][0]
    assert row["release"] == listed[0]["id"] and row["health"] == "ok"
    # pinned: a config change keeps the good release instead of rolling the source forward
    assert ct.ripdep("config", "set", "rel-revert", "A=1").returncode == 0
    assert app.serving()["version"] == "ok 1"


def test_a_release_that_dies_within_the_watch_window_is_switched_back(ct, rel):
    app = rel("rel-watch", extra="[releases]\nwatch = 4\n")
    assert app.ship("ok 1")[0] == 0
    code, doc = app.ship("dies-later 2")
    assert code == 12, doc
    assert "watch" in doc["errors"][0]["message"]
    assert app.serving()["version"] == "ok 1"


def test_rollback_to_the_previous_release_and_with_its_data(ct, rel):
    app = rel("rel-back")
    assert app.ship("ok 1")[0] == 0
    assert app.ship("ok 2")[0] == 0
    assert app.serving()["schema"] == 2
    refused = ct.ripdep("rollback", "rel-back", "--with-data", "--json")
    assert refused.returncode == 2 and "everything written since is lost" in refused.stdout
    assert app.serving()["version"] == "ok 2"  # refused: nothing changed
    code = ct.ripdep("rollback", "rel-back", "--with-data", "--yes").returncode
    assert code == 0
    assert app.serving() | {"pid": 0} == {"version": "ok 1", "schema": 1, "pid": 0}
    listed = app.releases()
    assert [r["outcome"] for r in listed] == ["live", "rolled_back"]
    # a deploy that installs a manifest releases the source again
    code, doc = app.ship("ok 3")
    assert code == 0 and app.serving()["version"] == "ok 3", doc


def test_status_and_releases_refuse_what_is_not_there(ct):
    assert ct.ripdep("releases", "no-such-app").returncode == 7
    assert ct.ripdep("rollback", "no-such-app").returncode == 7


def test_sigkill_at_every_step_of_a_releasing_deploy_converges_to_one_live_release(ct, rel):
    app = rel("rel-crash")
    assert app.ship("ok 1")[0] == 0
    code, doc = app.ship("ok 2")
    assert code == 0, doc
    total = len(doc["actions"])
    assert total >= 3, doc["actions"]  # the release, its phase, the switch, the restart
    for n in range(1, total + 1):
        version = f"ok {n + 2}"
        ct.write(f"{app.source}/VERSION", version + "\n")
        killed = ct.ripdep("deploy", app.name, "--manifest", app.manifest_path, "--json",
                           env={"RIPDEP_TEST_CRASH_AFTER": str(n)})
        assert killed.returncode == 137, (n, killed.returncode)
        status = json.loads(ct.ripdep("status", app.name, "--json").stdout)["data"]["apps"][0]
        assert status["release"] in {r["id"] for r in app.releases()}  # never a half-switched app
        code, doc = app.deploy(app.text())
        assert code == 0, (n, doc)
        assert app.serving()["version"] == version and app.serving()["schema"] == n + 2
        assert [r["live"] for r in app.releases()].count(True) == 1
        code, doc = app.deploy(app.text())
        assert code == 0 and not doc["changed"], (n, doc["actions"])


def test_a_revert_renders_the_files_of_the_release_it_goes_back_to(ct, rel):
    app = rel("rel-files", extra='[files]\n"conf.txt" = "conf.j2"\n')
    ct.write(f"{app.source}/conf.j2", "made by release one on {{ PORT }}\n", mode="0644")
    assert app.ship("ok 1")[0] == 0
    ct.write(f"{app.source}/conf.j2", "made by release two\n", mode="0644")
    code, doc = app.ship("unhealthy 2")
    assert code == 12, doc
    conf = ct.run("cat", "/etc/ripdep/files/rel-files/conf.txt", check=True).stdout
    assert conf.startswith("made by release one on "), conf
