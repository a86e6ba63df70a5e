"""Living with upgrades of ripdep itself (docs/install.md): which build wrote an app's files, and
what status says about it. install.sh itself is exercised for real in tests/integration/test_install.py."""

import subprocess
import sys
from pathlib import Path

from ripdep import BUILD, __version__, engine
from ripdep.status import AppStatus, table

# reuse the engine tests' world: a host config on disk, everything else an in-memory host
from test_engine import deploy, world  # noqa: F401  (world is a fixture)

ROOT = Path(__file__).resolve().parents[2]


def test_a_checkout_is_its_version_and_an_installed_build_names_itself(tmp_path):
    assert BUILD == __version__  # no BUILD file in a checkout
    pkg = tmp_path / "ripdep"
    pkg.mkdir()
    (pkg / "__init__.py").write_text((ROOT / "ripdep/__init__.py").read_text())
    (pkg / "BUILD").write_text(f"{__version__}+0123456789ab\n")
    out = subprocess.run([sys.executable, "-I", "-c", "import sys; sys.path.insert(0, sys.argv[1]); import ripdep; print(ripdep.BUILD)",
                          str(tmp_path)], capture_output=True, text=True, check=True).stdout
    assert out == f"{__version__}+0123456789ab\n"


def test_a_deploy_records_the_build_and_after_an_upgrade_the_next_one_takes_over_the_files(world):  # noqa: F811
    paths, host, _ = world
    deploy(world)
    assert host.states["shop"].ripdep_version == BUILD
    # the app's files as an older build left them: same bytes, older record
    host.states["shop"] = host.states["shop"].with_(ripdep_version="0.0.9+0ld0ld0ld0ld")
    host.mutations.clear()
    again = deploy(world)
    assert not again.changed  # nothing on the host differs...
    assert host.mutations == ["state shop"] and host.states["shop"].ripdep_version == BUILD  # ...but now it is ours
    host.mutations.clear()
    deploy(world)
    assert host.mutations == []  # and a rerun writes nothing at all


def test_check_and_start_stop_restart_do_not_claim_the_files(world):  # noqa: F811
    paths, host, _ = world
    deploy(world)
    # the verbs read the installed manifest from disk: put the fake's copy there
    paths.manifest("shop").parent.mkdir(parents=True, exist_ok=True)
    paths.manifest("shop").write_bytes(host.files[paths.manifest("shop")].content)
    host.states["shop"] = host.states["shop"].with_(ripdep_version="0.0.9+0ld0ld0ld0ld")
    deploy(world, check=True)
    engine.converge("shop", verb=engine.RESTART, paths=paths, host=host)
    engine.converge("shop", verb=engine.STOP, paths=paths, host=host)
    assert host.states["shop"].ripdep_version == "0.0.9+0ld0ld0ld0ld"  # they rewrite no file of the app


def test_status_names_the_apps_whose_files_an_other_build_wrote():
    current = AppStatus("fresh", desired="running", active_state="active", ripdep_version=BUILD)
    older = AppStatus("stale", desired="running", active_state="active", ripdep_version="0.0.9+0ld0ld0ld0ld")
    unknown = AppStatus("ancient", desired="stopped", active_state="inactive")
    unrecorded = AppStatus("gone")  # a manifest without ripdep's record: nothing was deployed
    assert [r.outdated for r in (current, older, unknown, unrecorded)] == [False, True, True, False]
    assert older.as_dict()["outdated"] is True and older.as_dict()["ripdep_version"] == "0.0.9+0ld0ld0ld0ld"
    assert not older.degraded  # an upgrade alone does not fail `status --strict`
    text = table([current, older, unknown, unrecorded], colour=False)
    notes = [line for line in text.splitlines() if "files written by" in line]
    assert notes == [f"stale: files written by ripdep 0.0.9+0ld0ld0ld0ld, this is {BUILD} "
                     "('ripdep deploy stale' rewrites what changed)",
                     f"ancient: files written by a ripdep that did not record its build, this is {BUILD} "
                     "('ripdep deploy ancient' rewrites what changed)"]


def test_init_says_each_change_it_makes_and_nothing_when_there_is_none(monkeypatch):
    """After an upgrade, `ripdep init` (install.sh runs it) migrates host settings out loud."""
    from click.testing import CliRunner

    from ripdep import hostinit
    from ripdep.cli import main
    from ripdep.resources import Change, Step

    hba = Change("pg_hba:ripdep", "update", "add ripdep's rules to /etc/postgresql/15/main/pg_hba.conf and reload PostgreSQL")
    for steps, args, expected in (
            ([Step("postgresql:host", [hba]), Step("caddy:host", [])], [],
             "  add ripdep's rules to /etc/postgresql/15/main/pg_hba.conf and reload PostgreSQL\nhost: prepared\n"),
            ([Step("postgresql:host", [hba])], ["--check"],
             "  would add ripdep's rules to /etc/postgresql/15/main/pg_hba.conf and reload PostgreSQL\nhost: would change\n"),
            ([Step("postgresql:host", []), Step("caddy:host", [])], [], "host: unchanged\n")):
        monkeypatch.setattr(hostinit, "init_host", lambda steps=steps, **kw: steps)
        result = CliRunner().invoke(main, ["init", *args])
        assert (result.exit_code, result.stdout) == (0, expected)
