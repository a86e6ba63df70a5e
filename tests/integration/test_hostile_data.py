"""A hostile app against ripdep's data path: its dump, its state dir and its backups are
app-controlled, and must never be processed with more privilege than the app has (issue 8)."""

import json

from conftest import App, manifest

PSQL = ["runuser", "-u", "postgres", "--", "psql", "-XAtq", "-h", "/run/postgresql"]

# Runs `ALTER ROLE <app> SUPERUSER` with the privileges of whoever evaluates it; called by a CHECK
# constraint, it runs for every row a restore loads. Errors are swallowed so the restore goes on.
ESCALATE = """
CREATE FUNCTION evil(x int) RETURNS bool LANGUAGE plpgsql AS $f$
BEGIN
  BEGIN
    EXECUTE format('ALTER ROLE %I SUPERUSER', '{app}');
  EXCEPTION WHEN others THEN NULL;
  END;
  BEGIN
    RESET ROLE;  -- a restore under SET ROLE would fall back to its superuser session here
    EXECUTE format('ALTER ROLE %I SUPERUSER', '{app}');
  EXCEPTION WHEN others THEN NULL;
  END;
  RETURN true;
END $f$;
CREATE TABLE t (x int CHECK (evil(x)));
INSERT INTO t VALUES (1), (2), (3);
"""


def as_app(ct, app: str, sql: str, check: bool = True):
    return ct.run("runuser", "-u", app, "--", "psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-h", "/run/postgresql",
                  "-d", app, "-c", sql, check=check)


def roles(ct) -> str:
    """Every role's attributes and memberships: must not change by a backup or a restore."""
    return ct.run(*PSQL, "-c", "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls,"
                  " (SELECT string_agg(roleid::regrole::text, ',') FROM pg_auth_members WHERE member = r.oid)"
                  " FROM pg_roles r ORDER BY 1", check=True).stdout


def superuser(ct, app: str) -> bool:
    return ct.run(*PSQL, "-c", f"SELECT rolsuper FROM pg_roles WHERE rolname = '{app}'", check=True).stdout.strip() == "t"


def ripdep_json(ct, *args):
    proc = ct.ripdep(*args, "--json")
    return proc.returncode, json.loads(proc.stdout)


def test_a_dump_cannot_make_its_app_superuser_by_backup_or_restore(ct):
    app = App(ct, "climber")
    assert app.deploy(manifest())[0] == 0
    as_app(ct, "climber", ESCALATE.format(app="climber"))
    before = roles(ct)
    code, doc = ripdep_json(ct, "backup", "climber")
    assert code == 0, doc
    assert doc["data"]["backup"]["verified"] is True  # the dump restores, by the app's own role
    assert roles(ct) == before and not superuser(ct, "climber")
    code, doc = ripdep_json(ct, "restore", "climber", doc["data"]["backup"]["name"], "--yes")
    assert code == 0, doc
    assert roles(ct) == before and not superuser(ct, "climber")
    assert as_app(ct, "climber", "SELECT count(*) FROM t").stdout.strip() == "3"  # the data came back
    # positive control: the same dump restored the old way (a superuser session) does escalate
    dump = f"{doc['steps'][0]['note'].removeprefix('from ')}/db.dump"
    ct.run(*PSQL, "-c", "CREATE DATABASE control", check=True)
    try:
        ct.sh(f"runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_restore --no-owner -d control < {dump}")
        assert superuser(ct, "climber")
    finally:
        ct.run(*PSQL, "-c", "ALTER ROLE climber NOSUPERUSER", check=True)
        ct.run(*PSQL, "-c", "DROP DATABASE control", check=True)


def test_status_flags_a_role_that_gained_attributes_and_deploy_resets_it(ct):
    app = App(ct, "drifter")
    assert app.deploy(manifest())[0] == 0
    code, doc = ripdep_json(ct, "status", "drifter")
    assert doc["data"]["apps"][0]["role_drift"] is None
    ct.run(*PSQL, "-c", "ALTER ROLE drifter CREATEROLE BYPASSRLS", check=True)
    ct.run(*PSQL, "-c", "GRANT pg_read_all_data TO drifter", check=True)
    proc = ct.ripdep("status", "drifter", "--strict", "--json")
    row = json.loads(proc.stdout)["data"]["apps"][0]
    assert proc.returncode == 10 and row["degraded"]
    assert row["role_drift"] == "CREATEROLE, BYPASSRLS, member of pg_read_all_data"
    code, doc = app.deploy()
    assert code == 0 and "role:drifter" in [a["id"] for a in doc["actions"]]
    assert ripdep_json(ct, "status", "drifter")[1]["data"]["apps"][0]["role_drift"] is None
    assert ct.run(*PSQL, "-c", "SELECT rolcreaterole OR rolbypassrls FROM pg_roles WHERE rolname = 'drifter'",
                  check=True).stdout.strip() == "f"


def test_a_refused_restore_leaves_the_running_app_and_its_data_untouched(ct):
    app = App(ct, "steady")
    assert app.deploy(manifest())[0] == 0
    # a database that dumps but cannot be restored (its CHECK needs a session setting): the backup
    # is kept unverified, and restoring it must be refused before anything live is touched
    as_app(ct, "steady", "CREATE FUNCTION chk(int) RETURNS bool LANGUAGE sql IMMUTABLE AS "
                         "$$ SELECT $1 > current_setting('steady.min')::int $$; "
                         "CREATE TABLE t (x int CHECK (chk(x))); SET steady.min = 0; INSERT INTO t VALUES (1);")
    code, doc = ripdep_json(ct, "backup", "steady")
    assert code == 11
    name = json.loads(ct.ripdep("backup", "list", "steady", "--json").stdout)["data"]["backups"][-1]["name"]
    pid = app.main_pid()
    as_app(ct, "steady", "SET steady.min = 0; INSERT INTO t VALUES (2)")
    ct.run("runuser", "-u", "steady", "--", "touch", "/var/lib/ripdep/apps/steady/after-backup", check=True)
    code, doc = ripdep_json(ct, "restore", "steady", name, "--yes")
    assert code == 11 and "nothing was changed" in doc["msg"], doc
    assert app.main_pid() == pid  # never stopped
    assert as_app(ct, "steady", "SELECT count(*) FROM t").stdout.strip() == "2"
    assert ct.run("test", "-e", "/var/lib/ripdep/apps/steady/after-backup").returncode == 0
    leftovers = ct.sh("ls -a /var/lib/ripdep/apps; runuser -u postgres -- psql -XAtc "
                      "\"select datname from pg_database where datname like 'ripdep%'\"", check=True).stdout
    assert ".steady." not in leftovers and "ripdep_" not in leftovers
    assert ct.get_json(f"{app.url}healthz") == {"ok": True}


def test_a_backup_verifies_only_if_it_restores_links_and_fifos_included(ct):
    app = App(ct, "linky")
    assert app.deploy(manifest(raw="database = false")) [0] == 0
    state = "/var/lib/ripdep/apps/linky"
    ct.sh(f"cd {state} && runuser -u linky -- ln -s /etc/shadow shadow && runuser -u linky -- ln -s /etc passwd-dir"
          f" && runuser -u linky -- mkfifo pipe && runuser -u linky -- sh -c 'echo kept > data'", check=True)
    code, doc = ripdep_json(ct, "backup", "linky")
    assert code == 0 and doc["data"]["backup"]["verified"], doc
    ct.run("rm", "-rf", f"{state}/data", check=True)
    code, doc = ripdep_json(ct, "restore", "linky", doc["data"]["backup"]["name"], "--yes")
    assert code == 0, doc
    listing = ct.run("find", state, "-mindepth", "1", "-printf", "%P %y %l %u\\n", check=True).stdout.split("\n")
    assert "shadow l /etc/shadow linky" in listing and "pipe p  linky" in listing
    assert ct.run("cat", f"{state}/data", check=True).stdout == "kept\n"
    # the link was restored as a link: nothing was read through it, nothing written through it
    assert ct.run("runuser", "-u", "linky", "--", "cat", f"{state}/shadow").returncode != 0


def test_a_state_tar_cannot_write_outside_the_state_dir(ct):
    """A link member followed by a file member through it: tar runs as the app, so the write
    through /etc is refused by the kernel, and the restore changes nothing."""
    app = App(ct, "tarry")
    assert app.deploy(manifest(raw="database = false"))[0] == 0
    code, doc = ripdep_json(ct, "backup", "tarry")
    folder = doc["data"]["backup"]["path"]
    ct.run("/usr/bin/python3", "-c", f"""
import hashlib, io, os, tarfile
folder = {folder!r}
with tarfile.open(folder + '/state.tar', 'w') as tar:
    link = tarfile.TarInfo('state/etc'); link.type = tarfile.SYMTYPE; link.linkname = '/etc'
    tar.addfile(link)
    data = b'pwned\\n'; f = tarfile.TarInfo('state/etc/ripdep-pwned'); f.size = len(data)
    tar.addfile(f, io.BytesIO(data))
sums = [l for l in open(folder + '/SHA256SUMS') if not l.endswith('  state.tar\\n')]
sums.append(hashlib.sha256(open(folder + '/state.tar', 'rb').read()).hexdigest() + '  state.tar\\n')
open(folder + '/SHA256SUMS', 'w').writelines(sums)
""", check=True)
    pid = app.main_pid()
    code, doc = ripdep_json(ct, "restore", "tarry", folder, "--yes")
    assert code == 11, doc
    assert ct.run("test", "-e", "/etc/ripdep-pwned").returncode != 0
    assert app.main_pid() == pid


def test_destroy_rechecks_the_backup_it_relies_on(ct):
    app = App(ct, "relied")
    assert app.deploy(manifest())[0] == 0
    code, doc = ripdep_json(ct, "backup", "relied")
    assert code == 0
    ct.run("truncate", "-s", "10", f"{doc['data']['backup']['path']}/db.dump", check=True)
    code, doc = ripdep_json(ct, "destroy", "relied", "--yes")
    assert code == 11 and "no longer passes its checks" in doc["msg"], doc
    assert ct.get_json(f"{app.url}healthz") == {"ok": True}
    assert ct.run(*PSQL, "-c", "SELECT 1 FROM pg_database WHERE datname = 'relied'", check=True).stdout.strip() == "1"


def test_restore_refuses_another_apps_backup(ct):
    for name in ("mine", "theirs"):
        assert App(ct, name).deploy(manifest())[0] == 0
    code, doc = ripdep_json(ct, "backup", "theirs")
    assert code == 0
    code, doc = ripdep_json(ct, "restore", "mine", doc["data"]["backup"]["path"], "--yes")
    assert code == 11 and "not of 'mine'" in " ".join(doc["errors"][0]["details"]), doc


def test_a_full_disk_during_backup_is_a_clear_failure_that_leaves_nothing(ct):
    app = App(ct, "full")
    assert app.deploy(manifest())[0] == 0
    as_app(ct, "full", "CREATE TABLE big AS SELECT md5(random()::text) || md5(random()::text) AS v "
                       "FROM generate_series(1, 100000)")
    ct.sh("mkdir -p /var/backups/ripdep/full && mount -t tmpfs -o size=256k tmpfs /var/backups/ripdep/full",
          check=True)
    try:
        code, doc = ripdep_json(ct, "backup", "full")
        assert code == 11 and doc["failed"] and "No space left on device" in doc["msg"], doc
        # the partial folder is gone, which leaves room to record the failure for status
        assert ct.run("ls", "-A", "/var/backups/ripdep/full").stdout.split() == ["last-run.toml"]
        row = ripdep_json(ct, "status", "full")[1]["data"]["apps"][0]
        assert row["backup_state"] == "failed" and row["degraded"], row
    finally:
        ct.run("umount", "/var/backups/ripdep/full")


def test_a_sparse_file_costs_the_backup_what_it_costs_the_disk(ct):
    app = App(ct, "sparse")
    assert app.deploy(manifest(raw="database = false"))[0] == 0
    ct.run("runuser", "-u", "sparse", "--", "truncate", "-s", "2G", "/var/lib/ripdep/apps/sparse/hole", check=True)
    code, doc = ripdep_json(ct, "backup", "sparse")
    assert code == 0, doc
    size = int(ct.run("stat", "-c", "%s", f"{doc['data']['backup']['path']}/state.tar", check=True).stdout)
    assert size < 10 << 20, size
    code, doc = ripdep_json(ct, "restore", "sparse", doc["data"]["backup"]["name"], "--yes")
    assert code == 0, doc
    assert ct.run("stat", "-c", "%s", "/var/lib/ripdep/apps/sparse/hole", check=True).stdout.strip() == str(2 << 30)


def test_no_other_app_connects_to_the_scratch_database_while_it_is_in_use(ct, probe_factory):
    probe_factory("snoop")
    victim = App(ct, "victim")
    assert victim.deploy(manifest())[0] == 0
    as_app(ct, "victim", "CREATE FUNCTION key() RETURNS text LANGUAGE sql AS $$ SELECT 'VICTIM-KEY' $$")
    # snoop tries to connect to ripdep_scratch as fast as it can while victim's backups are verified
    ct.sh("(for i in $(seq 400); do runuser -u snoop -- psql -XAtq -h /run/postgresql -d ripdep_scratch "
          "-c 'select 1' >/dev/null 2>&1 && echo in; done > /tmp/snoop.log) & echo $! > /tmp/snoop.pid", check=True)
    try:
        for _ in range(4):
            assert ripdep_json(ct, "backup", "victim")[0] == 0
    finally:
        ct.sh("kill $(cat /tmp/snoop.pid) 2>/dev/null; sleep 0.2", check=False)
    assert ct.run("cat", "/tmp/snoop.log").stdout.count("in") == 0
