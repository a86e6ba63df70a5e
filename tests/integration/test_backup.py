"""Backups that are verified, restore, and a destroy that cannot lose data."""

import json


from conftest import AWS, MOTO_PORT, ROOT, TEST_VENV, App, manifest

EXAMPLE = str(ROOT / "examples/hello/ripdep.toml")


def backup_json(ct, app, env=None):
    proc = ct.ripdep("backup", app, "--json", env=env)
    return proc.returncode, json.loads(proc.stdout)


def snapshot(ct) -> str:
    return ct.sh("find /etc/ripdep /var/lib/ripdep /srv/ripdep /etc/systemd/system /etc/caddy -printf '%p %T@ %s\\n' | sort; "
                 "runuser -u postgres -- psql -XAtc 'select datname from pg_database order by 1'; "
                 "runuser -u postgres -- psql -XAtc 'select rolname from pg_roles order by 1'; getent passwd",
                 check=True).stdout


def test_round_trip_backup_destroy_deploy_restore(ct):
    code, doc = ct.deploy_json("vault", "--manifest", EXAMPLE)
    assert code == 0, doc
    for _ in range(3):
        last = ct.get_json("http://127.0.0.1/vault/")
    assert last["visits"] == 3
    secret = ct.run("cat", "/etc/ripdep/secrets/vault/SECRET_KEY", check=True).stdout
    code, doc = backup_json(ct, "vault")
    assert code == 0, doc
    b = doc["data"]["backup"]
    assert b["verified"] is True and b["verify_error"] is None
    files = ct.run("find", b["path"], "-mindepth", "1", "-printf", "%P %m\\n", check=True).stdout.split("\n")
    names = {line.split()[0] for line in files if line}
    assert {"db.dump", "state.tar", "manifest.toml", "secrets/SECRET_KEY", "backup.toml", "SHA256SUMS",
            "VERIFIED.toml"} <= names
    assert all(line.split()[1] in ("600", "700") for line in files if line)  # root-only
    code, doc = ct.deploy_json("vault")
    proc = ct.ripdep("destroy", "vault", "--yes", "--json")
    assert proc.returncode == 0, proc.stderr
    assert ct.curl("http://127.0.0.1/vault/", "-o", "/dev/null", "-w", "%{http_code}").stdout != "200"
    code, doc = ct.deploy_json("vault", "--manifest", EXAMPLE)
    assert code == 0 and ct.get_json("http://127.0.0.1/vault/")["visits"] == 1  # a new, empty database
    assert ct.run("cat", "/etc/ripdep/secrets/vault/SECRET_KEY").stdout != secret
    proc = ct.ripdep("restore", "vault", b["name"], "--yes", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["health"]["ok"]
    answer = ct.get_json("http://127.0.0.1/vault/")
    assert answer["visits"] == 4 and answer["db_user"] == "vault"  # the same rows, served through Caddy
    assert ct.run("cat", "/etc/ripdep/secrets/vault/SECRET_KEY", check=True).stdout == secret
    # the restored database belongs to the app's role and others still cannot connect
    owner = ct.run("runuser", "-u", "postgres", "--", "psql", "-XAtd", "vault", "-c",
                   "select tableowner from pg_tables where tablename = 'visits'", check=True).stdout.strip()
    assert owner == "vault"


def test_restore_needs_yes_and_refuses_a_flipped_byte(ct):
    code, doc = ct.deploy_json("flip", "--manifest", EXAMPLE)
    assert code == 0
    ct.get_json("http://127.0.0.1/flip/")
    code, doc = backup_json(ct, "flip")
    path = doc["data"]["backup"]["path"]
    assert ct.ripdep("restore", "flip", doc["data"]["backup"]["name"]).returncode == 2  # no --yes
    ct.run("/usr/bin/python3", "-c", f"p='{path}/db.dump'; d=bytearray(open(p,'rb').read()); d[len(d)//2]^=1; "
                                     "open(p,'wb').write(d)", check=True)
    before = ct.get_json("http://127.0.0.1/flip/")["visits"]
    proc = ct.ripdep("restore", "flip", path, "--yes", "--json")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 11 and doc["errors"][0]["code"] == "backup_invalid"
    assert "db.dump: checksum mismatch" in doc["errors"][0]["details"]
    assert ct.get_json("http://127.0.0.1/flip/")["visits"] == before + 1  # untouched, still serving


def test_unrestorable_dump_fails_verification_and_does_not_count_for_destroy(ct):
    app = App(ct, "fragile")
    code, doc = app.deploy(manifest(raw='[limits]\ntasks = 64\n'))
    assert code == 0
    # a database that dumps fine but cannot be restored: a CHECK whose function needs a setting
    sql = ("CREATE FUNCTION chk(int) RETURNS bool LANGUAGE sql IMMUTABLE AS "
           "$$ SELECT $1 > current_setting('fragile.min')::int $$; "
           "CREATE TABLE t (x int CHECK (chk(x))); SET fragile.min = 0; INSERT INTO t VALUES (1);")
    ct.run("runuser", "-u", "fragile", "--", "psql", "-XAq", "-h", "/run/postgresql", "-d", "fragile", "-c", sql,
           check=True)
    code, doc = backup_json(ct, "fragile")
    assert code == 11 and doc["errors"][0]["code"] == "backup_invalid"
    assert "does not restore" in doc["errors"][0]["message"]
    listed = json.loads(ct.ripdep("backup", "list", "fragile", "--json").stdout)["data"]["backups"]
    assert [b["verified"] for b in listed] == [False]
    before = snapshot(ct)
    proc = ct.ripdep("destroy", "fragile", "--yes")
    assert proc.returncode == 3 and "no verified backup" in proc.stderr
    assert snapshot(ct) == before
    status = json.loads(ct.ripdep("status", "--json", "fragile").stdout)["data"]["apps"][0]
    assert status["backup_state"] == "failed" and status["degraded"] is True


def test_destroy_refused_without_backup_then_removes_everything(ct, probe_factory):
    other = probe_factory("bystander")
    code, doc = ct.deploy_json("doomed", "--manifest", EXAMPLE)
    assert code == 0
    before = snapshot(ct)
    proc = ct.ripdep("destroy", "doomed", "--yes", "--json")
    assert proc.returncode == 3 and json.loads(proc.stdout)["errors"][0]["code"] == "precondition"
    assert snapshot(ct) == before
    proc = ct.ripdep("destroy", "doomed", "--yes", "--backup", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert any("kept in /var/backups/ripdep/doomed" in s["note"] for s in doc["steps"])
    assert ct.run("getent", "passwd", "doomed").returncode != 0
    assert ct.run("getent", "group", "doomed").returncode != 0
    psql = ["runuser", "-u", "postgres", "--", "psql", "-XAtc"]
    assert ct.run(*psql, "select 1 from pg_roles where rolname = 'doomed'").stdout.strip() == ""
    assert ct.run(*psql, "select 1 from pg_database where datname = 'doomed'").stdout.strip() == ""
    for path in ("/etc/systemd/system/ripdep-doomed.service", "/etc/caddy/ripdep/paths/doomed.caddy",
                 "/etc/ripdep/env/doomed.env", "/etc/ripdep/secrets/doomed", "/var/lib/ripdep/state/doomed.toml",
                 "/srv/ripdep/doomed", "/etc/ripdep/apps/doomed.toml", "/var/lib/ripdep/apps/doomed",
                 "/etc/systemd/system/multi-user.target.wants/ripdep-doomed.service"):
        assert ct.run("test", "-e", path).returncode != 0, path
    assert ct.show("ripdep-doomed.service", "LoadState") == "not-found"
    assert ct.run("ls", "/var/backups/ripdep/doomed").stdout.strip()  # backups kept
    assert ct.get_json(f"{other.url}healthz") == {"ok": True}  # another app still answers
    assert ct.ripdep("status", "doomed").returncode == 7


def test_scheduled_backup_timer_and_a_failing_run_in_status(ct):
    app = App(ct, "timed")
    code, doc = app.deploy(manifest(raw='[backup]\nschedule = "daily"\nkeep = 2\n'))
    assert code == 0, doc
    assert ct.show("ripdep-backup-timed.timer", "ActiveState") == "active"
    assert ct.show("ripdep-backup-timed.timer", "UnitFileState") == "enabled"
    status = json.loads(ct.ripdep("status", "--json", "timed").stdout)["data"]["apps"][0]
    assert status["backup_state"] == "stale"  # scheduled, never ran
    ct.run("systemctl", "start", "ripdep-backup-timed.service", check=True)  # what the timer fires
    status = json.loads(ct.ripdep("status", "--json", "timed").stdout)["data"]["apps"][0]
    assert status["backup_state"] == "ok" and status["backup_last"] and status["degraded"] is False
    for _ in range(2):
        ct.run("systemctl", "start", "ripdep-backup-timed.service", check=True)
    verified = [b for b in json.loads(ct.ripdep("backup", "list", "timed", "--json").stdout)["data"]["backups"] if b["verified"]]
    assert len(verified) == 2  # keep = 2
    ct.run("systemctl", "stop", "postgresql.service", check=True)
    try:
        failed = ct.run("systemctl", "start", "ripdep-backup-timed.service")
        assert failed.returncode != 0
        assert ct.show("ripdep-backup-timed.service", "Result") == "exit-code"
    finally:
        ct.run("systemctl", "start", "postgresql.service", check=True)
    status = json.loads(ct.ripdep("status", "--json", "timed").stdout)["data"]["apps"][0]
    assert status["backup_state"] == "failed" and status["degraded"] and "pg_dump" in status["backup_error"]
    human = ct.ripdep("status", "timed").stdout
    assert "FAILED" in human and "last backup failed" in human
    # no schedule any more: the timer goes
    code, doc = app.deploy(manifest())
    assert code == 0 and ct.run("test", "-e", "/etc/systemd/system/ripdep-backup-timed.timer").returncode != 0


def test_s3_upload_and_listing(ct, moto):
    ct.run(f"{TEST_VENV}/bin/python", str(ROOT / "tests/fixtures/aws.py"), "mb", "ripdep-backups", env=AWS, check=True)
    config = ct.run("cat", "/etc/ripdep/ripdep.toml", check=True).stdout
    ct.write("/etc/ripdep/ripdep.toml", config.replace('s3_bucket = ""', 's3_bucket = "ripdep-backups"')
             .replace('s3_endpoint = ""', f's3_endpoint = "http://127.0.0.1:{MOTO_PORT}"')
             .replace('s3_region = ""', 's3_region = "us-east-1"'))
    try:
        code, doc = ct.deploy_json("offsite", "--manifest", EXAMPLE)
        assert code == 0
        code, doc = backup_json(ct, "offsite", env=AWS)
        assert code == 0, doc
        assert doc["data"]["backup"]["remote"] == f"s3://ripdep-backups/ripdep/offsite/{doc['data']['backup']['name']}/"
        rows = json.loads(ct.ripdep("backup", "list", "offsite", "--json", env=AWS).stdout)["data"]["backups"]
        assert rows[-1]["local"] and rows[-1]["verified"] and rows[-1]["remote_verified"] is True
        assert rows[-1]["remote"] == doc["data"]["backup"]["remote"]
    finally:
        ct.write("/etc/ripdep/ripdep.toml", config)


def test_destroy_and_stop_check_show_the_plan_and_change_nothing(ct, probe_factory):
    probe_factory("planned")
    before = snapshot(ct)
    proc = ct.ripdep("destroy", "planned", "--check", "--diff", "--json")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0 and doc["check"] and not doc["changed"], doc
    assert "-ExecStart=" in "".join(doc["diff"])
    ids = {a["id"] for a in doc["actions"]}
    assert {"unit:ripdep-planned.service", "database:planned", "role:planned", "user:planned"} <= ids
    assert any("would be refused" in s["note"] for s in doc["steps"])  # no backup yet
    proc = ct.ripdep("stop", "planned", "--check", "--json")
    assert proc.returncode == 0 and [a["action"] for a in json.loads(proc.stdout)["actions"]][-1] == "stop"
    assert snapshot(ct) == before
    assert ct.show("ripdep-planned.service", "ActiveState") == "active"


def test_restore_keeps_the_locale_the_backed_up_database_had(ct):
    app = App(ct, "collated")
    assert app.deploy(manifest(database_locale='"C"'))[0] == 0
    code, doc = backup_json(ct, "collated")
    assert code == 0, doc
    assert app.deploy(manifest())[0] == 0  # the key is gone from the manifest; the database keeps C
    proc = ct.ripdep("restore", "collated", doc["data"]["backup"]["name"], "--yes", "--json")
    assert proc.returncode == 0, proc.stdout
    collate = ct.run("runuser", "-u", "postgres", "--", "psql", "-XAtc",
                     "select datcollate from pg_database where datname = 'collated'", check=True).stdout.strip()
    assert collate == "C"


def psql_as(ct, app: str, sql: str) -> str:
    return ct.run("runuser", "-u", app, "--", "psql", "-XAtq", "-h", "/run/postgresql", "-d", app, "-c", sql,
                  check=True).stdout.strip()


def test_restore_creates_an_app_that_is_not_on_this_host(ct):
    app = App(ct, "phoenix")
    assert app.deploy(manifest(database_locale='"C"', raw='[secrets]\nTOKEN = "generate"\n'))[0] == 0
    psql_as(ct, "phoenix", "CREATE TABLE probe (v text); INSERT INTO probe VALUES ('probe-row')")
    assert app.op("write", path="/var/lib/ripdep/apps/phoenix/probe.txt")["ok"]
    token = ct.run("cat", "/etc/ripdep/secrets/phoenix/TOKEN", check=True).stdout
    code, doc = backup_json(ct, "phoenix")
    assert code == 0, doc
    name = doc["data"]["backup"]["name"]
    assert ct.ripdep("destroy", "phoenix", "--yes").returncode == 0
    assert ct.run("getent", "passwd", "phoenix").returncode != 0
    proc = ct.ripdep("restore", "phoenix", name)  # no --yes: nothing happens, and it says what would
    assert proc.returncode == 2 and "creates app phoenix from backup" in proc.stderr
    proc = ct.ripdep("restore", "phoenix", name, "--yes", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["changed"] and doc["health"]["ok"]
    ids = [s["id"] for s in doc["steps"]]
    assert len(ids) == len(set(ids)) and "user:phoenix" in ids and "restore:phoenix" in ids
    assert psql_as(ct, "phoenix", "SELECT v FROM probe") == "probe-row"
    assert app.op("read", path="/var/lib/ripdep/apps/phoenix/probe.txt")["result"] == "probe\n"
    assert ct.run("cat", "/etc/ripdep/secrets/phoenix/TOKEN", check=True).stdout == token
    collate = ct.run("runuser", "-u", "postgres", "--", "psql", "-XAtc",
                     "select datcollate from pg_database where datname = 'phoenix'", check=True).stdout.strip()
    assert collate == "C"
    row = json.loads(ct.ripdep("status", "--json", "phoenix").stdout)["data"]["apps"][0]
    assert row["desired"] == "running" and row["health"] == "ok"
    assert ct.deploy_json("phoenix")[1]["changed"] is False  # the restored app is converged


FOREIGN = "/root/foreign"


def forge(ct, src: str, app: str, edit: str = "") -> str:
    """A copy of a backup as another host (or an attacker) could hand it over: renamed to `app`,
    edited by the shell code `edit`, with checksums that match the edit."""
    target = f"{FOREIGN}/{app}"
    ct.sh(f"rm -rf {target} && mkdir -p {FOREIGN} && cp -a {src} {target} && cd {target} && rm -f VERIFIED.toml && "
          f"sed -i 's/^app = .*/app = \"{app}\"/' backup.toml && {edit or 'true'} && "
          "find . -type f ! -name SHA256SUMS -printf '%P\\n' | sort | xargs sha256sum > SHA256SUMS", check=True)
    return target


def donor_backup(ct, name: str) -> str:
    """The path of a verified backup of a freshly deployed probe app `name`."""
    assert App(ct, name).deploy(manifest())[0] == 0
    code, doc = backup_json(ct, name)
    assert code == 0, doc
    return doc["data"]["backup"]["path"]


def test_restore_refuses_a_hostile_foreign_backup_and_creates_nothing(ct):
    src = donor_backup(ct, "donor")
    cases = [
        # a start command systemd would run as root
        ("sed -i 's|^start = .*|start = [\"+/bin/sh\", \"-c\", \"id\"]|' manifest.toml", "ExecStart= prefix"),
        # code taken from ripdep's own secrets
        ("sed -i 's|^source = .*|source = \"/etc/ripdep/secrets\"|' manifest.toml", "manifest key 'source'"),
        # a relative source would name a folder beside the backup
        ("sed -i 's|^source = .*|source = \".\"|' manifest.toml", "is relative"),
        # a locale name that is SQL
        ("printf 'app = \"intruder\"\\ndatabase = true\\ndatabase_locale = \"C%s TEMPLATE x\"\\n' \"'\" > backup.toml",
         "database_locale"),
    ]
    before = snapshot(ct)
    for edit, problem in cases:
        path = forge(ct, src, "intruder", edit)
        proc = ct.ripdep("restore", "intruder", path, "--yes", "--json")
        doc = json.loads(proc.stdout)
        assert proc.returncode == 11 and doc["errors"][0]["code"] == "backup_invalid", (edit, doc)
        assert problem in doc["errors"][0]["message"] + " ".join(doc["errors"][0]["details"]), (edit, doc)
    # intact and well-formed, but writable by others: it could change between its checks and its use
    path = forge(ct, src, "intruder", "chmod o+w manifest.toml")
    proc = ct.ripdep("restore", "intruder", path, "--yes", "--json")
    assert proc.returncode == 11 and "writable by group or others" in proc.stdout
    assert snapshot(ct) == before
    assert ct.run("getent", "passwd", "intruder").returncode != 0
    # the same copy, handed over properly, is restored: a new app from another host's backup
    path = forge(ct, src, "intruder")
    proc = ct.ripdep("restore", "intruder", path, "--yes", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ct.get_json("http://127.0.0.1/intruder/healthz") == {"ok": True}


def no_trace_of(ct, app: str) -> None:
    assert ct.run("getent", "passwd", app).returncode != 0
    psql = ["runuser", "-u", "postgres", "--", "psql", "-XAtc"]
    assert ct.run(*psql, f"select 1 from pg_roles where rolname = '{app}'").stdout.strip() == ""
    assert ct.run(*psql, f"select 1 from pg_database where datname in ('{app}', 'ripdep_scratch')").stdout.strip() == ""
    for path in (f"/etc/ripdep/apps/{app}.toml", f"/etc/ripdep/secrets/{app}", f"/etc/ripdep/env/{app}.env",
                 f"/var/lib/ripdep/state/{app}.toml", f"/etc/systemd/system/ripdep-{app}.service",
                 f"/etc/caddy/ripdep/paths/{app}.caddy", f"/srv/ripdep/{app}", f"/var/lib/ripdep/apps/{app}",
                 f"/var/lib/ripdep/apps/.{app}.restore", f"/srv/ripdep/{app}.releases",
                 f"/var/lib/ripdep/releases/{app}", f"/etc/ripdep/files/{app}"):
        assert ct.run("test", "-e", path).returncode != 0, path


def test_a_restore_that_fails_after_creating_the_app_takes_it_back(ct):
    src = donor_backup(ct, "donor2")
    # a dump that does not restore: found only once the app's role restores it, after the app was created
    path = forge(ct, src, "stray", "printf 'PGDMP garbage' > db.dump && printf s3cret > secrets/TOKEN")
    proc = ct.ripdep("restore", "stray", path, "--yes", "--json")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 11 and doc["errors"][0]["code"] == "backup_invalid", doc
    assert "app stray, created for this restore, was removed again" in doc["errors"][0]["details"]
    assert doc["changed"] is False
    no_trace_of(ct, "stray")
    # a route another app holds: refused before the deploy applies anything; the secrets written first go too
    path = forge(ct, src, "stray", "printf s3cret > secrets/TOKEN && printf '[route]\\npath = \"/donor2/\"\\n' >> manifest.toml")
    proc = ct.ripdep("restore", "stray", path, "--yes", "--json")
    doc = json.loads(proc.stdout)
    assert proc.returncode != 0 and doc["errors"][0]["code"] in ("conflict", "bad_input"), doc
    assert "/donor2/" in doc["errors"][0]["message"]
    no_trace_of(ct, "stray")
    assert ct.get_json("http://127.0.0.1/donor2/healthz") == {"ok": True}  # the app it named still answers
