"""The fleet in the real systemd container (issue 13, items 1-3): copies onboarded with --like, drift
seen by plan, and a migration fan-out with apply that stops at the copy whose data the migration
cannot take: the canaries and the copies before it serve the new release, that copy and the rest
the old one, and the report says which."""

import json

import pytest

from conftest import ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "release"
SOURCE = "/srv/src/fleet"
COPIES = [f"fl-{i:02d}" for i in range(1, 13)]


def serving(ct, app: str) -> str:
    return ct.get_json(f"http://127.0.0.1/{app}/version")["version"]


@pytest.fixture(scope="module")
def fleet(ct):
    ct.sh(f"rm -rf {SOURCE} && mkdir -p /srv/src && cp -r {FIXTURE} {SOURCE} && echo 'ok 1' > {SOURCE}/VERSION "
          f"&& chmod -R o+rX {SOURCE}", check=True)
    ct.write("/root/manifests/fl-01.toml", f'source = "{SOURCE}"\nstart = ["/usr/bin/python3", "app.py"]\n'
             'health = "/healthz"\nrelease = ["/usr/bin/python3", "migrate.py"]\n[env]\nTENANT = "one"\n'
             '[secrets]\nKEY = "generate"\n')
    code, doc = ct.deploy_json("fl-01", "--manifest", "/root/manifests/fl-01.toml")
    assert code == 0, doc
    for app in COPIES[1:]:
        code, doc = ct.deploy_json(app, "--like", "fl-01", "--set", f"TENANT={app}")
        assert code == 0, doc
    yield COPIES
    for app in COPIES:
        ct.sh(f"ripdep stop {app} >/dev/null 2>&1 || true")


def test_a_copy_gets_its_own_everything_and_never_the_others_secrets(ct, fleet):
    env = ct.run("cat", "/etc/ripdep/env/fl-02.env", check=True).stdout
    assert 'TENANT="fl-02"' in env and "fl-01" not in env
    keys = {ct.run("cat", f"/etc/ripdep/secrets/{app}/KEY", check=True).stdout for app in ("fl-01", "fl-02", "fl-03")}
    assert len(keys) == 3  # generated anew for each copy
    assert serving(ct, "fl-03") == "ok 1"
    assert ct.deploy_json("fl-02", "--like", "fl-01")[0] == 2  # exists already
    assert ct.deploy_json("fl-99", "--like", "no-such")[0] == 7
    assert ct.deploy_json("fl-98", "--like", "fl-01", "--set", "BAD KEY=1")[0] == 2
    assert ct.run("test", "-e", "/etc/ripdep/apps/fl-98.toml").returncode != 0


def test_plan_sees_drift_and_changes_nothing(ct, fleet):
    proc = ct.ripdep("plan", "fl-01", "fl-02", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["data"]["apps"][0]["outcome"] == "in_sync"
    ct.sh("systemctl stop ripdep-fl-02.service", check=True)
    ct.sh("echo '# hand edit' >> /etc/ripdep/env/fl-01.env", check=True)
    before = ct.sh("md5sum /etc/ripdep/env/fl-01.env; systemctl is-active ripdep-fl-02.service || true").stdout
    proc = ct.ripdep("plan", "fl-01", "fl-02", "--json")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 14 and doc["errors"][0]["code"] == "changes_pending"
    rows = {r["app"]: r for r in doc["data"]["apps"]}
    assert "env:fl-01" in [a["id"] for a in rows["fl-01"]["actions"]]
    assert "start" in [a["action"] for a in rows["fl-02"]["actions"]]
    assert ct.sh("md5sum /etc/ripdep/env/fl-01.env; systemctl is-active ripdep-fl-02.service || true").stdout == before
    proc = ct.ripdep("apply", "fl-01", "fl-02", "--json")
    assert proc.returncode == 0, proc.stdout
    assert ct.ripdep("plan", "fl-01", "fl-02").returncode == 0


def test_a_migration_fan_out_halts_at_the_copy_it_cannot_migrate(ct, fleet):
    poison = ["ripdep", "run", "fl-07", "--", "/bin/sh", "-c", 'psql "$DATABASE_URL" -qc "CREATE TABLE poison ()"']
    assert ct.run(*poison).returncode == 0
    ct.sh(f"echo 'ok 2' > {SOURCE}/VERSION", check=True)
    assert ct.ripdep("plan").returncode == 14  # every copy has new code
    proc = ct.ripdep("apply", "--all", "--canary", "2", "--parallel", "3", "--json", timeout=600)
    doc = json.loads(proc.stdout)
    assert proc.returncode == 15 and doc["errors"][0]["code"] == "fleet_failed", doc
    rows = {r["app"]: r for r in doc["data"]["apps"]}
    assert rows["fl-01"]["outcome"] == rows["fl-02"]["outcome"] == "applied"  # the canaries
    assert rows["fl-07"]["outcome"] == "failed" and rows["fl-07"]["error"]["code"] == "release_failed"
    assert serving(ct, "fl-07") == "ok 1"  # not switched: the old release serves
    skipped = [a for a, r in rows.items() if r["outcome"] == "skipped"]
    assert skipped and "fl-12" in skipped
    for app, row in rows.items():
        if app in fleet:
            want = "ok 2" if row["outcome"] == "applied" else "ok 1"
            assert serving(ct, app) == want, (app, row)
    assert f"failed: fl-07; skipped: {', '.join(skipped)}" in doc["errors"][0]["message"]
