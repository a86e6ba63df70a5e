"""install.sh for real, inside the container (docs/install.md): an install from before the versioned
layout upgrades in place, a rerun changes nothing, an upgrade never breaks a ripdep run that is
going on, --rollback switches back, --uninstall keeps every app and its data, bash completion.

$PREFIX is bound read-only into the container, so these tests install into a prefix of the
container's own (/opt/ripdep-ct-upgrade, in its tmpfs overlay). Its dependencies' venv is a copy of
$PREFIX's; the builds come from copies of this checkout. The container has no network: every
install.sh run here also proves that an install needs none once the dependencies are there.

Build B is build A with a tripwire appended to each module: a module of B refuses to load into a
run whose `ripdep` package is not B's. A run that started on A and lazily imports a module after the
switch to B therefore fails loudly instead of silently mixing versions (the ImportError of issue 16)."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from conftest import CT, PREFIX, ROOT, manifest

from ripdep import __version__

P = "/opt/ripdep-ct-upgrade"
SRC_A, SRC_B = "/root/ripdep-src-a", "/root/ripdep-src-b"
PAUSE = "/root/pause"  # sitecustomize.py that holds a run at its first lazy import (paused_run)
HBA = "/etc/postgresql/15/main/pg_hba.conf"

TRIPWIRE = ('\nimport ripdep as _build  # noqa: E402  (tests/integration/test_install.py: build B)\n'
            'assert getattr(_build, "TEST_BUILD", None) == "b", f"{__name__} of build B imported into a run of another build"\n')
PAUSER = '''import os, sys, time

class PauseAtFirstLazyImport:
    """Holds a ripdep run right before it imports ripdep.engine (lazily, inside the command) until
    $PAUSE_GO exists; $PAUSE_READY says it got there."""

    def find_spec(self, name, path=None, target=None):
        if name == "ripdep.engine" and os.environ.get("PAUSE_GO"):
            sys.meta_path.remove(self)
            open(os.environ["PAUSE_READY"], "w").close()
            while not os.path.exists(os.environ["PAUSE_GO"]):
                time.sleep(0.02)
        return None

sys.meta_path.insert(0, PauseAtFirstLazyImport())
'''


@pytest.fixture(scope="module")
def sources(ct):
    """Two builds: A is this checkout, B is A with the tripwire."""
    parts = " ".join(f"{ROOT}/{p}" for p in ("install.sh", "pyproject.toml", "README.md", "ripdep", "units", "caddy"))
    ct.write("/root/tripwire.py", TRIPWIRE)
    ct.sh(f"""set -e
        rm -rf {SRC_A} {SRC_B} && mkdir -p {SRC_A} && cp -a {parts} {SRC_A}/
        find {SRC_A} -name __pycache__ -prune -exec rm -rf {{}} +
        cp -a {SRC_A} {SRC_B}
        echo 'TEST_BUILD = "b"' >> {SRC_B}/ripdep/__init__.py
        find {SRC_B}/ripdep -name '*.py' ! -path {SRC_B}/ripdep/__init__.py ! -name __main__.py \\
          -exec sh -c 'cat /root/tripwire.py >> "$0"' {{}} \\;""", check=True)
    assert ct.run("grep", "-L", "TEST_BUILD", f"{SRC_B}/ripdep/engine.py", f"{SRC_B}/ripdep/resources/__init__.py",
                  f"{SRC_B}/ripdep/host/fs.py").stdout == ""
    ct.write(f"{PAUSE}/sitecustomize.py", PAUSER)


def dependencies_only(ct) -> None:
    """P becomes the dependencies' venv (a copy of $PREFIX's: the container cannot download them), no ripdep."""
    ct.sh(f"""set -e
        rm -rf {P} && cp -a {PREFIX} {P}
        rm -rf {P}/versions {P}/current {P}/previous {P}/bin/ripdep {P}/.install.lock
        rm -rf {P}/lib/python3*/site-packages/ripdep {P}/lib/python3*/site-packages/ripdep-*.dist-info""", check=True)


@pytest.fixture
def prefix(ct, sources):
    """An empty prefix of the container's own."""
    dependencies_only(ct)
    yield P
    ct.run("rm", "-rf", P)


@pytest.fixture
def host_wide(ct):
    """Tests that let install.sh manage /usr/local/bin/ripdep (RIPDEP_LINK=1) put back the one the
    rest of the suite uses."""
    yield
    ct.run("ln", "-sfn", f"{PREFIX}/bin/ripdep", "/usr/local/bin/ripdep", check=True)


def install(ct, src: str = SRC_A, *args: str, link: bool = False, check: bool = True) -> subprocess.CompletedProcess:
    proc = ct.run(f"{src}/install.sh", *args, env={"RIPDEP_PREFIX": P, "RIPDEP_LINK": "1" if link else "0"},
                  timeout=300)
    if check:
        assert proc.returncode == 0, f"install.sh {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def ripdep(ct, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return ct.run(f"{P}/bin/ripdep", *args, env=env, timeout=180)


def version(ct) -> str:
    return ct.run(f"{P}/bin/ripdep", "--version", check=True).stdout.strip()


def deploy(ct, app: str, text: str | None = None) -> dict:
    args = ["deploy", app, "--json"]
    if text is not None:
        ct.write(f"/root/manifests/{app}.toml", text)
        args += ["--manifest", f"/root/manifests/{app}.toml"]
    proc = ripdep(ct, *args)
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0, doc
    return doc


def status_row(ct, app: str) -> tuple[dict, str]:
    proc = ripdep(ct, "status", app, "--json")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0, doc
    return doc["data"]["apps"][0], doc["data"]["ripdep"]


def snapshot(ct) -> str:
    """Every file of the prefix (bytecode caches aside) with inode, mtime, mode and link target."""
    return ct.sh(f"find {P} -path '*/__pycache__' -prune -o -printf '%p %i %T@ %m %l\\n' | sort", check=True).stdout


def test_an_install_from_before_versions_upgrades_in_place_and_a_rerun_changes_nothing(ct, prefix):
    # the layout install.sh made before: ripdep itself in the venv, pip's entry point at bin/ripdep
    ct.run(f"{P}/bin/python", "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps", "--no-index",
           "--no-build-isolation", SRC_A, check=True)
    assert "from ripdep.fast import main" in ct.run("cat", f"{P}/bin/ripdep", check=True).stdout
    deploy(ct, "inst-old", manifest())

    first = install(ct)
    new = version(ct)
    assert new.startswith(f"{__version__}+") and f"installed ripdep {new} at {P}" in first.stdout
    assert ct.run("readlink", f"{P}/current").stdout.strip() == f"versions/{new}"
    assert "os.path.realpath" in ct.run("cat", f"{P}/bin/ripdep").stdout  # the wrapper replaced pip's script
    assert "host: unchanged" in first.stdout  # install.sh ran `ripdep init`: nothing to migrate here
    # a run started from the old layout may still be going: its package stays until the next install
    assert ct.sh(f"ls -d {P}/lib/python3*/site-packages/ripdep").returncode == 0
    row, running = status_row(ct, "inst-old")
    assert row["health"] == "ok" and row["outdated"] and running == new

    second = install(ct)
    assert "removed the unversioned ripdep" in second.stdout and f"ripdep {new} at {P} is up to date" in second.stdout
    assert ct.sh(f"ls -d {P}/lib/python3*/site-packages/ripdep*").returncode != 0

    before = snapshot(ct)
    third = install(ct)
    assert f"ripdep {new} at {P} is up to date" in third.stdout and "wrote" not in third.stdout, third.stdout
    assert snapshot(ct) == before

    # the app's files are the new build's after its next deploy
    assert not deploy(ct, "inst-old")["changed"]
    row, _ = status_row(ct, "inst-old")
    assert row["ripdep_version"] == new and not row["outdated"]


def test_an_upgrade_under_running_status_and_deploy_loops_fails_no_run(ct, prefix):
    install(ct)
    a = version(ct)
    deploy(ct, "inst-loop", manifest())
    out = "/root/loops"
    script = f"""
        rm -rf {out} && mkdir -p {out}
        loop() {{
          local i=0
          while [ ! -e {out}/stop ]; do
            i=$((i + 1))
            {P}/bin/ripdep "$1" inst-loop --json > {out}/$1.$BASHPID.$i.json 2> {out}/$1.$BASHPID.$i.err
            echo "$1 $? $BASHPID.$i $(date +%s.%N)" >> {out}/runs
          done
        }}
        loop status & loop status & loop deploy &
        sleep 1.5
        echo "switch-start $(date +%s.%N)" >> {out}/install
        RIPDEP_PREFIX={P} RIPDEP_LINK=0 {SRC_B}/install.sh > {out}/install.log 2>&1
        echo "install-exit $?" >> {out}/install
        sleep 2
        touch {out}/stop
        wait
        cat {out}/install"""
    done = ct.sh(script, timeout=300)
    assert "install-exit 0" in done.stdout, ct.run("cat", f"{out}/install.log").stdout
    b = version(ct)
    assert b != a

    runs = [line.split() for line in ct.run("cat", f"{out}/runs", check=True).stdout.splitlines()]
    failed = [r for r in runs if r[1] != "0"]
    details = [ct.run("cat", f"{out}/{kind}.{run}.err").stdout for kind, _, run, _ in failed[:3]]
    assert failed == [], details
    count = ("import collections, glob, json; print(json.dumps(collections.Counter("
             f"json.load(open(f))['data']['ripdep'] for f in glob.glob('{out}/status.*.json'))))")
    builds = ct.run("/usr/bin/python3", "-c", count, check=True).stdout
    seen = json.loads(builds)
    # both builds answered: runs went on before, across and after the switch
    assert set(seen) == {a, b} and sum(seen.values()) >= 10, seen
    assert sum(1 for r in runs if r[0] == "deploy") >= 5
    row, running = status_row(ct, "inst-loop")
    assert running == b and row["ripdep_version"] == b and row["health"] == "ok"


def paused_run(ct, wrapper: str, app: str, tag: str) -> subprocess.Popen:
    """`ripdep deploy APP` started through `wrapper` and held at its first lazy import."""
    ready, go = f"/root/{tag}.ready", f"/root/{tag}.go"
    ct.run("rm", "-f", ready, go)
    proc = subprocess.Popen([str(CT), "exec", "/usr/bin/env", f"PYTHONPATH={PAUSE}", f"PAUSE_READY={ready}",
                             f"PAUSE_GO={go}", wrapper, "deploy", app, "--json"],
                            env=ct.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(300):
        if ct.run("test", "-e", ready).returncode == 0:
            return proc
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("the paused run never reached its first lazy import")


def release(ct, proc: subprocess.Popen, tag: str) -> tuple[int, str, str]:
    ct.run("touch", f"/root/{tag}.go", check=True)
    out, err = proc.communicate(timeout=180)
    return proc.returncode, out, err


def test_a_run_started_before_a_switch_finishes_on_its_own_version_and_rollback_switches_back(ct, prefix):
    install(ct)
    a = version(ct)
    deploy(ct, "inst-run", manifest())

    # the control: an entry point that puts the symlink itself on sys.path mixes the two builds
    naive = f"{P}/bin/ripdep-naive"
    ct.sh(f"sed 's|os.path.realpath(\"{P}/current\")|\"{P}/current\"|' {P}/bin/ripdep > {naive} && chmod 755 {naive}",
          check=True)
    assert "realpath" not in ct.run("cat", naive).stdout
    held = paused_run(ct, naive, "inst-run", "naive")
    install(ct, SRC_B)
    b = version(ct)
    code, out, err = release(ct, held, "naive")
    assert code != 0 and "of build B imported into a run of another build" in err, (code, out, err)

    rolled = install(ct, SRC_A, "--rollback")
    assert f"rolled back: ripdep {a} is in use at {P} (was {b}" in rolled.stdout
    assert version(ct) == a and ct.run("readlink", f"{P}/previous").stdout.strip() == f"versions/{b}"

    # the real entry point: a run held on A across the switch to B finishes on A
    held = paused_run(ct, f"{P}/bin/ripdep", "inst-run", "real")
    forward = install(ct, SRC_A, "--rollback")  # again: forward to B
    assert f"rolled back: ripdep {b} is in use" in forward.stdout and version(ct) == b
    code, out, err = release(ct, held, "real")
    assert code == 0, (out, err)
    doc = json.loads(out)
    assert not doc["failed"] and doc["health"]["ok"]

    # the held run recorded its own build; status (now B) names the app as written by A
    row, running = status_row(ct, "inst-run")
    assert running == b and row["ripdep_version"] == a and row["outdated"]
    table = ripdep(ct, "status", "inst-run").stdout
    assert f"inst-run: files written by ripdep {a}, this is {b}" in table
    deploy(ct, "inst-run")
    row, _ = status_row(ct, "inst-run")
    assert row["ripdep_version"] == b and not row["outdated"]


def test_an_upgrade_keeps_the_previous_version_only(ct, prefix):
    install(ct)
    a = version(ct)
    install(ct, SRC_B)
    b = version(ct)
    # a third build (A with a comment more) replaces A as the previous, and A goes
    ct.sh(f"rm -rf /root/ripdep-src-c && cp -a {SRC_A} /root/ripdep-src-c && "
          "echo '# build C' >> /root/ripdep-src-c/ripdep/paths.py", check=True)
    third = install(ct, "/root/ripdep-src-c")
    c = version(ct)
    assert len({a, b, c}) == 3 and f"removed old version {a}" in third.stdout
    assert sorted(ct.run("ls", f"{P}/versions").stdout.split()) == sorted([b, c])
    assert ct.run("readlink", f"{P}/previous").stdout.strip() == f"versions/{b}"
    # reinstalling an installed build only switches
    again = install(ct, SRC_B)
    assert f"switched to ripdep {b} at {P} (already installed; before: {c})" in again.stdout and version(ct) == b


def test_init_after_an_upgrade_says_what_it_migrates_and_then_nothing(ct, prefix):
    install(ct)
    original = ct.run("cat", HBA, check=True).stdout
    # pg_hba as an older ripdep left it: its block without the scratch database rule
    ct.write(HBA, original.replace("local   ripdep_scratch", "#local  ripdep_scratch"), mode="0640")
    ct.run("chown", "postgres:postgres", HBA, check=True)
    try:
        migrated = install(ct)
        assert f"  add ripdep's rules to {HBA} and reload PostgreSQL\nhost: prepared" in migrated.stdout
        assert ct.run("cat", HBA, check=True).stdout == original
        assert "host: unchanged" in install(ct).stdout
    finally:
        ct.write(HBA, original, mode="0640")
        ct.run("chown", "postgres:postgres", HBA, check=True)


def test_refusals_are_clear_and_change_nothing(ct, prefix):
    assert install(ct, SRC_A, "--rollback", check=False).returncode == 4  # nothing installed yet
    install(ct)
    before = snapshot(ct)
    proc = install(ct, SRC_A, "--rollback", check=False)
    assert proc.returncode == 4 and "no previous version" in proc.stderr
    proc = install(ct, SRC_A, "--upgrade", check=False)
    assert proc.returncode == 2 and "usage: install.sh [--rollback | --uninstall]" in proc.stderr
    proc = ct.run(f"{SRC_A}/install.sh", env={"RIPDEP_PREFIX": "opt/relative"})
    assert proc.returncode == 2 and "must be an absolute path" in proc.stderr
    proc = ct.run(f"{SRC_A}/install.sh", env={"RIPDEP_PREFIX": P, "RIPDEP_LINK": "yes"})
    assert proc.returncode == 2 and "RIPDEP_LINK must be 0 or 1" in proc.stderr
    # --uninstall of a folder that is not a ripdep install removes nothing
    ct.sh("mkdir -p /root/not-ripdep && touch /root/not-ripdep/precious", check=True)
    proc = ct.run(f"{SRC_A}/install.sh", "--uninstall", env={"RIPDEP_PREFIX": "/root/not-ripdep", "RIPDEP_LINK": "0"})
    assert proc.returncode == 4 and "does not look like a ripdep install" in proc.stderr
    assert ct.run("test", "-e", "/root/not-ripdep/precious").returncode == 0
    assert snapshot(ct) == before


def test_uninstall_removes_ripdep_and_keeps_every_app_and_its_data(ct, prefix, host_wide):
    install(ct, link=True)
    assert ct.run("readlink", "/usr/local/bin/ripdep").stdout.strip() == f"{P}/bin/ripdep"
    # bash completion, as an interactive bash runs it: click's script asks ripdep for the app names
    deploy(ct, "inst-keep", manifest(raw='[backup]\nschedule = "daily"\n', raw_secret='[secrets]\nTOKEN = "generate"\n'))
    deploy(ct, "inst-keep2", manifest())
    # an app whose own units look like backup units (ripdep-backup-keep.service, .proxy.service)
    deploy(ct, "backup-keep", manifest(raw='[backup]\nschedule = "weekly"\n'))
    other_pid = ct.show("ripdep-backup-keep.service", "MainPID")
    words = ct.sh("source /usr/share/bash-completion/completions/ripdep; COMP_WORDS=(ripdep status inst-k); "
                  "COMP_CWORD=2; _ripdep_completion ripdep; printf '%s\\n' \"${COMPREPLY[@]}\"", check=True).stdout
    assert words.split() == ["inst-keep", "inst-keep2"]
    # `sudo ripdep status <TAB>` completes as the user, who cannot read /etc/ripdep/apps
    words = ct.run("runuser", "-u", "nobody", "--", "bash", "-c",
                   "source /usr/share/bash-completion/completions/ripdep; COMP_WORDS=(ripdep status inst-k); "
                   "COMP_CWORD=2; _ripdep_completion ripdep; printf '%s\\n' \"${COMPREPLY[@]}\"", check=True).stdout
    assert words.split() == ["inst-keep", "inst-keep2"]
    assert ripdep(ct, "backup", "inst-keep").returncode == 0
    before = snapshot(ct)
    assert "wrote" not in install(ct, link=True).stdout and snapshot(ct) == before  # a rerun with the link too
    timer = "ripdep-backup-inst-keep.timer"
    assert ct.run("systemctl", "is-active", timer).stdout.strip() == "active"
    pid = ct.show("ripdep-inst-keep.service", "MainPID")

    out = install(ct, SRC_A, "--uninstall", link=True).stdout
    assert f"removed {P}" in out and "kept every app and its data" in out and timer in out
    for gone in (P, "/usr/local/bin/ripdep", "/usr/share/bash-completion/completions/ripdep",
                 f"/etc/systemd/system/{timer}", "/etc/systemd/system/timers.target.wants/" + timer):
        assert ct.run("test", "-e", gone).returncode != 0, gone
    assert ct.run("systemctl", "is-active", timer).stdout.strip() == "inactive"
    # every app and its data stay: running unit, answer through Caddy, database, secrets, backups
    assert ct.show("ripdep-inst-keep.service", "MainPID") == pid
    assert ct.show("ripdep-backup-keep.service", "MainPID") == other_pid
    for unit in ("ripdep-backup-keep.service", "ripdep-backup-keep.proxy.service", "ripdep-backup-keep.proxy.socket"):
        assert ct.run("test", "-e", f"/etc/systemd/system/{unit}").returncode == 0, unit
    assert ct.run("test", "-e", "/etc/systemd/system/ripdep-backup-backup-keep.timer").returncode != 0
    assert json.loads(ct.curl("http://127.0.0.1/backup-keep/").stdout)
    assert json.loads(ct.curl("http://127.0.0.1/inst-keep/").stdout)
    for kept in ("/etc/ripdep/apps/inst-keep.toml", "/etc/ripdep/secrets/inst-keep/TOKEN", "/etc/ripdep/env/inst-keep.env",
                 "/var/lib/ripdep/state/inst-keep.toml", "/srv/ripdep/inst-keep", "/etc/systemd/system/ripdep-inst-keep.service"):
        assert ct.run("test", "-e", kept).returncode == 0, kept
    assert ct.sh("ls /var/backups/ripdep/inst-keep/2*/", check=True).stdout.strip()
    dbs = ct.run("runuser", "-u", "postgres", "--", "psql", "-Atc", "SELECT datname FROM pg_database WHERE datname LIKE 'inst-keep%'",
                 check=True).stdout.split()
    assert sorted(dbs) == ["inst-keep", "inst-keep2"]
    assert "nothing installed" in install(ct, SRC_A, "--uninstall", link=True).stdout  # twice is fine

    # a reinstall (its dependencies from PyPI: copied here, offline) and a deploy bring the scheduled backups back
    dependencies_only(ct)
    install(ct, link=True)
    assert not deploy(ct, "inst-keep2")["changed"]
    assert deploy(ct, "inst-keep")["changed"]
    assert ct.run("systemctl", "is-active", timer).stdout.strip() == "active"
