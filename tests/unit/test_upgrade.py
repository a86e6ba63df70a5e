"""Living with upgrades of ripdep itself (docs/install.md): which build wrote an app's files, what
status says about it, and bash completion of app names. install.sh itself is exercised for real in
tests/integration/test_install.py."""

import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from fakehost import rooted
from ripdep import BUILD, __version__, engine
from ripdep.cli import main
from ripdep.paths import PATHS
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


# --- bash completion ------------------------------------------------------------------------

@pytest.fixture
def apps_root(tmp_path):
    """PATHS re-rooted at tmp_path (as tests/unit/test_contract.py does), with three manifests."""
    with rooted(tmp_path):
        PATHS.manifests.mkdir(parents=True)
        for name in ("shop-a", "shop-b", "blog"):
            PATHS.manifest(name).write_text("")
        (PATHS.manifests / "notes.txt").write_text("")  # not a manifest
        (PATHS.manifests / "Bad;Name.toml").write_text("")  # not an app name ripdep would accept
        yield tmp_path


def complete(words: str) -> list[str]:
    """What bash gets back: click's bash_complete protocol, as the script install.sh installs asks."""
    parts = words.split(" ")
    result = CliRunner().invoke(main, [], prog_name="ripdep", env={
        "_RIPDEP_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(len(parts) - 1)})
    assert result.exit_code == 0, result.output
    return [line.split(",", 1)[1] for line in result.stdout.splitlines() if line]


@pytest.mark.parametrize("words, expected", [
    ("ripdep deploy shop", ["shop-a", "shop-b"]),
    ("ripdep deploy ", ["blog", "shop-a", "shop-b"]),
    ("ripdep status blog shop-", ["shop-a", "shop-b"]),
    ("ripdep config set b", ["blog"]),
    ("ripdep secret rotate shop-a", ["shop-a"]),
    ("ripdep backup list ", ["blog", "shop-a", "shop-b"]),
    ("ripdep backup s", ["shop-a", "shop-b"]),  # `backup APP` takes one
    ("ripdep backup ", ["list", "blog", "shop-a", "shop-b"]),
    ("ripdep restore x", []),
    ("ripdep dep", ["deploy"]),  # commands complete as click does it
])
def test_completion_offers_the_installed_apps(apps_root, words, expected):
    assert complete(words) == expected


def test_a_user_who_cannot_read_the_manifests_gets_the_deployed_apps(apps_root, monkeypatch):
    """`sudo ripdep deploy <TAB>` completes as the user: /etc/ripdep/apps is root's, /srv/ripdep is not."""
    import os

    for name in ("shop-a", "blog", ".hidden"):
        PATHS.code(name).mkdir(parents=True)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if path == PATHS.manifests else real_access(path, mode))
    assert complete("ripdep deploy ") == ["blog", "shop-a"]
    assert complete("ripdep logs s") == ["shop-a"]
    PATHS.code_root.rename(apps_root / "gone")
    assert complete("ripdep deploy ") == []  # nothing deployed yet: nothing offered, no error


def test_every_app_argument_completes_app_names():
    """A new command with an APP argument gets completion too (ripdep.cli.APP)."""
    def walk(command, path):
        for param in command.params:
            if isinstance(param, click.Argument) and param.name in ("app", "apps"):
                yield " ".join(path), param
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, path + [name])

    found = list(walk(main, ["ripdep"]))
    assert len(found) >= 15
    missing = [path for path, param in found if param._custom_shell_complete is None]
    assert missing == []


def test_the_bash_script_is_clicks_own_and_asks_ripdep():
    result = CliRunner().invoke(main, [], prog_name="ripdep", env={"_RIPDEP_COMPLETE": "bash_source"})
    assert result.exit_code == 0
    assert "_RIPDEP_COMPLETE=bash_complete" in result.stdout and "complete -o nosort -F _ripdep_completion ripdep" in result.stdout


def test_completion_and_list_import_nothing_heavy():
    code = ("import sys, os; os.environ['_RIPDEP_COMPLETE'] = 'bash_complete'; os.environ['COMP_WORDS'] = 'ripdep deploy x';"
            "os.environ['COMP_CWORD'] = '2'; from ripdep.cli import main\n"
            "try:\n  main(prog_name='ripdep')\nexcept SystemExit:\n  pass\n"
            "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'psycopg', 'jinja2', 'tomlkit', 'pystemd'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout.strip()
    assert out == ""
