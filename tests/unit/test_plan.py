"""Pure planning: observed state in, changes out."""

from pathlib import Path

import pytest

from ripdep import hostinit
from ripdep.errors import BadInput, Conflict, PreconditionFailed
from ripdep.host.fs import FileState
from ripdep.host.postgres import DatabaseState, RoleState
from ripdep.host.systemd import UnitState
from ripdep.host.users import NOLOGIN, UserState
from ripdep.paths import Paths
from ripdep.resources import database, service, user
from ripdep.resources.file import DesiredFile, diff_file
from ripdep.resources.port import pick_port

HOME = "/var/lib/ripdep/apps/hello"


def actions(changes):
    return [c.action for c in changes]


# --- user ---
def test_user_absent_is_created():
    assert actions(user.diff_user("hello", None, HOME, group_exists=False)) == ["create"]


def test_user_ours_and_right_is_unchanged():
    u = UserState("hello", 990, 990, "ripdep app hello", HOME, NOLOGIN, "hello")
    assert user.diff_user("hello", u, HOME, True) == []


def test_user_drift_is_corrected():
    u = UserState("hello", 990, 990, "ripdep app hello", HOME, "/bin/bash", "hello")
    assert actions(user.diff_user("hello", u, HOME, True)) == ["fix"]


def test_foreign_user_or_group_is_never_adopted():
    with pytest.raises(Conflict):
        user.diff_user("hello", UserState("hello", 1000, 1000, "Hello Person", "/home/hello", "/bin/bash", "hello"), HOME, True)
    with pytest.raises(Conflict):
        user.diff_user("hello", None, HOME, group_exists=True)


# --- role and database ---
MARK = "managed by ripdep: app hello"


def test_role():
    assert actions(database.diff_role("hello", None)) == ["create"]
    ok = RoleState("hello", True, False, False, False, True, MARK)
    assert database.diff_role("hello", ok) == []
    assert actions(database.diff_role("hello", RoleState("hello", True, True, False, False, True, MARK))) == ["fix"]
    assert actions(database.diff_role("hello", RoleState("hello", True, False, False, False, False, MARK))) == ["fix"]
    with pytest.raises(Conflict):
        database.diff_role("hello", RoleState("hello", True, False, False, False, False, None))


def test_database_locale_is_never_changed_in_place():
    assert "with locale C" in database.diff_database("hello", None, "C")[0].detail
    ok = DatabaseState("hello", "hello", MARK, False, "C")
    assert database.diff_database("hello", ok, "C") == []
    assert database.diff_database("hello", DatabaseState("hello", "hello", MARK, False, "C.UTF-8"), None) == []
    with pytest.raises(PreconditionFailed, match="cannot be changed in place"):
        database.diff_database("hello", DatabaseState("hello", "hello", MARK, False, "C.UTF-8"), "C")


def test_database():
    assert actions(database.diff_database("hello", None)) == ["create"]
    assert database.diff_database("hello", DatabaseState("hello", "hello", MARK, False)) == []
    assert actions(database.diff_database("hello", DatabaseState("hello", "hello", MARK, True))) == ["fix"]
    # interrupted between CREATE DATABASE and COMMENT: owned by our role, so ours
    assert actions(database.diff_database("hello", DatabaseState("hello", "hello", None, True))) == ["fix"]
    with pytest.raises(Conflict):
        database.diff_database("hello", DatabaseState("hello", "postgres", None, True))


# --- files ---
def test_file_create_update_fix_and_foreign():
    want = DesiredFile(Path("/x/a.env"), b"# m\nA=1\n", 0o600, marker="# m")
    assert actions(diff_file("env:a", FileState(None), want)) == ["create"]
    assert diff_file("env:a", FileState(b"# m\nA=1\n", 0o600, 0, 0), want) == []
    upd = diff_file("env:a", FileState(b"# m\nA=2\n", 0o600, 0, 0), want)
    assert actions(upd) == ["update"] and "-A=2" in upd[0].diff and "+A=1" in upd[0].diff
    assert actions(diff_file("env:a", FileState(b"# m\nA=1\n", 0o644, 0, 0), want)) == ["fix"]
    with pytest.raises(Conflict):
        diff_file("env:a", FileState(b"somebody else's\n", 0o600, 0, 0), want)


def test_file_diff_shows_masked_content_only():
    want = DesiredFile(Path("/x/a.env"), b"# m\nS=new-secret\n", 0o600, marker="# m", masked=b"# m\nS=********\n")
    [change] = diff_file("env:a", FileState(b"# m\nS=old-secret\n", 0o600, 0, 0), want, b"# m\nS=********\n")
    assert "secret" not in change.diff.replace("S=", "")


# --- code ---
def test_code_scan_ignores_vcs_sees_modes_and_rehashes_only_what_changed(tmp_path, monkeypatch):
    from ripdep import releases

    (tmp_path / "a.py").write_text("print(1)\n")
    (tmp_path / "b.py").write_text("print(2)\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x").write_text("ignored")
    first = releases.scan(tmp_path, {})
    (tmp_path / ".git" / "x").write_text("still ignored")
    assert releases.scan(tmp_path, first.index).digest == first.digest
    (tmp_path / "a.py").chmod(0o755)
    moded = releases.scan(tmp_path, first.index)
    assert moded.digest != first.digest
    hashed = []
    real = releases.hash_file
    monkeypatch.setattr(releases, "hash_file", lambda fd: hashed.append(fd) or real(fd))
    again = releases.scan(tmp_path, moded.index)
    assert hashed == [] and again.digest == moded.digest  # nothing changed in size, mtime, inode or ctime: the index answers
    (tmp_path / "b.py").write_text("print(3)\n")
    releases.scan(tmp_path, again.index)
    assert len(hashed) == 1
    (tmp_path / "c.py").write_text("x")
    (tmp_path / "c.py").chmod(0o600)  # root-only: refused even though nothing else changed
    with pytest.raises(BadInput, match="not readable by every user"):
        releases.scan(tmp_path, again.index)


def test_pruning_keeps_the_newest_the_live_and_the_previous_release():
    from ripdep.releases import Release, to_prune

    records = [Release(f"2026010{i}T000000Z-x", f"t{i}", "c", "m", "", outcome="superseded") for i in range(1, 8)]
    records[1] = Release("20260102T000000Z-x", "t2", "c", "m", "", outcome="live")  # rolled back to
    gone = {r.id for r in to_prune(records, 3, "20260102T000000Z-x")}
    # live (2) and the one before it (1) stay, with the newest (7): three kept
    assert gone == {f"2026010{i}T000000Z-x" for i in (3, 4, 5, 6)}


# --- service reactions ---
def unit_state(active="active", need_reload=False, load="loaded"):
    return UnitState(load, active, "running", "enabled", 42, 0, None, None, 0, need_reload)


def test_first_deploy_starts_once():
    # a unit systemd never loaded is read from disk at its first start: no daemon-reload
    changes = service.diff_service("u", "running", unit_state("inactive", load="not-found"), True, False, "", "h")
    assert actions(changes) == ["enable", "start"]


def test_a_unit_systemd_has_loaded_is_reloaded_before_it_starts():
    # loaded: systemd holds the old text (a stopped app, a unit left by an interrupted run)
    changes = service.diff_service("u", "running", unit_state("inactive"), True, False, "", "h")
    assert actions(changes) == ["enable", "daemon-reload", "start"]
    changes = service.diff_service("u", "running", unit_state("inactive", need_reload=True, load="not-found"), True,
                                   False, "", "h")
    assert actions(changes) == ["enable", "daemon-reload", "start"]


def test_no_change_run_does_nothing():
    assert service.diff_service("u", "running", unit_state(), False, True, "h", "h") == []


def test_changed_files_restart_once():
    assert actions(service.diff_service("u", "running", unit_state(), True, True, "old", "new")) == ["daemon-reload", "restart"]
    assert actions(service.diff_service("u", "running", unit_state(), False, True, "old", "new")) == ["restart"]


def test_crashed_unit_is_started_and_systemd_reload_need_honoured():
    assert actions(service.diff_service("u", "running", unit_state("failed"), False, True, "h", "h")) == ["start"]
    assert actions(service.diff_service("u", "running", unit_state(need_reload=True), False, True, "h", "h")) == ["daemon-reload"]


def test_desired_stopped_is_honoured():
    assert service.diff_service("u", "stopped", unit_state("inactive"), False, False, "old", "new") == []
    assert actions(service.diff_service("u", "stopped", unit_state("inactive"), True, False, "", "new")) == ["daemon-reload"]
    assert actions(service.diff_service("u", "stopped", unit_state("inactive"), False, True, "h", "h")) == ["disable", "daemon-reload"]


# --- ports ---
def test_pick_port():
    assert pick_port(20000, 20002, set()) == 20000
    assert pick_port(20000, 20002, {20000, 20001}) == 20002
    assert pick_port(20000, 20001, {20000, 20001}) is None


# --- host init edits ---
DEBIAN_CADDYFILE = """# The Caddyfile is an easy way to configure your Caddy web server.
:80 {
\t# Set this path to your site's directory.
\troot * /usr/share/caddy
\tfile_server
}
"""


def test_caddyfile_edit_is_minimal_and_idempotent():
    paths = Paths()
    once = hostinit.with_caddy_imports(DEBIAN_CADDYFILE, ":80", paths)
    assert hostinit.with_caddy_imports(once, ":80", paths) == once
    assert "admin unix//run/caddy/admin.sock" in once
    lines = once.splitlines()
    i = lines.index(":80 {")
    assert lines[i + 1].strip().startswith("import /etc/caddy/ripdep/paths/*.caddy")
    assert lines[-2].startswith("import /etc/caddy/ripdep/hosts/*.caddy")
    assert lines[-1].startswith("import /etc/caddy/ripdep/metrics/*.caddy")  # the scrape site (fleet.md)
    for original in DEBIAN_CADDYFILE.splitlines():
        assert original in lines


def test_caddyfile_with_existing_global_block():
    text = "{\n\temail ops@example.com\n}\n:80 {\n\tfile_server\n}\n"
    out = hostinit.with_caddy_imports(text, ":80", Paths())
    assert out.startswith("{\n\tadmin unix//run/caddy/admin.sock")
    assert "email ops@example.com" in out
    with pytest.raises(PreconditionFailed, match="admin"):
        hostinit.with_caddy_imports("{\n\tadmin localhost:2019\n}\n:80 {\n}\n", ":80", Paths())


def test_caddyfile_without_the_path_site_is_refused():
    with pytest.raises(PreconditionFailed, match="no site block"):
        hostinit.with_caddy_imports("example.com {\n}\n", ":80", Paths())


DEBIAN_HBA = """# comment
local   all             postgres                                peer

# TYPE  DATABASE        USER            ADDRESS                 METHOD
local   all             all                                     peer
host    all             all             127.0.0.1/32            scram-sha-256
"""


def test_pg_hba_block_goes_above_the_first_rule_once():
    out = hostinit.with_hba_block(DEBIAN_HBA)
    assert hostinit.with_hba_block(out) == out
    rules = [l.split() for l in out.splitlines() if l.strip() and not l.startswith("#")]
    assert rules[0] == ["local", "sameuser", "+ripdep_apps", "peer"]
    # the scratch database of backup verification and restore: app roles restore into it themselves
    assert rules[1] == ["local", "ripdep_scratch", "+ripdep_apps", "peer"]
    assert rules[2] == ["local", "all", "+ripdep_apps", "reject"]
    assert rules[3][:3] == ["host", "sameuser", "+ripdep_apps"] and rules[4][-1] == "reject"
    assert rules[5] == ["local", "all", "postgres", "peer"]
