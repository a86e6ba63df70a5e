"""`ripdep run`: the systemd-run command line built from the app's unit (pure), the checks made
before anything starts, and the CLI's exit statuses. tests/integration/test_run.py runs it for real."""

import os
import shlex
import signal
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ripdep import render, run
from ripdep.cli import main
from ripdep.errors import BadInput, Conflict, UnknownApp
from ripdep.paths import Paths
from ripdep.spec import parse_manifest

PATHS = Paths()
CODE = PATHS.code("hello")


def spec(**overrides):
    data = {"source": ".", "start": ["/usr/bin/python3", "app.py"], **overrides}
    return parse_manifest("hello", data, Path("/srv/src/hello/ripdep.toml"))


def unit(credentials=(), **overrides) -> str:
    return render.render_unit(spec(**overrides), PATHS, credentials)


def argv_for(unit_text: str, command: list[str], pty: bool = False) -> list[str]:
    return run.systemd_run_argv("hello", unit_text, command, pty=pty, unit_id="0badc0de", paths=PATHS)


def split(argv: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(systemd-run's options, the properties, the command) of a command line."""
    end = argv.index("--")
    options = argv[1:end]
    props = [o.removeprefix("--property=") for o in options if o.startswith("--property=")]
    return options, props, argv[end + 1:]


UNITS = {
    "strict": unit(),
    "jit+credentials+limits": unit(("API_KEY", "TOKEN"), profile="jit", delivery="credentials",
                                   limits={"memory": "256M", "cpu": "50%", "tasks": 64}),
    "egress": unit(network={"egress": ["192.0.2.10", "2001:db8::/64"]}),
}


@pytest.mark.parametrize("name", UNITS)
def test_the_sandbox_is_every_service_line_of_the_apps_unit_but_how_it_starts(name):
    text = UNITS[name]
    _, props, _ = split(argv_for(text, ["/usr/bin/id"]))
    service = [f"{k}={v}" for k, v in run.service_directives(text)]
    kept = [p for p in service if p.split("=", 1)[0] not in ("Type", "ExecStart", "Restart", "RestartSec")]
    # systemd-run reads "localhost" only as the whole value: the egress list gets its prefixes
    kept = [p.replace("=localhost ", "=127.0.0.0/8 ::1/128 ") if p.startswith("IPAddressAllow=") else p for p in kept]
    # the unit's own lines, in the unit's order (SystemCallFilter= twice: the order matters)
    assert props == ["TimeoutStartSec=infinity", *kept]
    assert len(kept) == len(service) - 4
    # the hardening part of the rendered unit, read straight off the text: all of it is there
    hardening = text.split("# Hardening", 1)[1].split("[Install]")[0]
    lines = [ln for ln in hardening.splitlines()[1:] if ln and not ln.startswith("#")
             and not ln.startswith("IPAddressAllow=localhost ")]
    assert lines and all(ln in props for ln in lines)
    for key in ("User=hello", "Group=hello", f"WorkingDirectory={CODE}", "EnvironmentFile=/etc/ripdep/env/hello.env",
                "StateDirectory=ripdep/apps/hello", "UMask=0077", "NoNewPrivileges=yes", "ProtectSystem=strict"):
        assert key in props


def test_nothing_of_unit_or_install_sections_and_no_socket_relation():
    _, props, _ = split(argv_for(UNITS["strict"], ["/usr/bin/id"]))
    keys = {p.split("=", 1)[0] for p in props}
    assert not keys & {"Wants", "After", "Description", "StartLimitIntervalSec", "StartLimitBurst", "WantedBy",
                       "ExecStart", "Restart", "RestartSec", "Type"}


def test_network_is_the_apps_own():
    _, strict, _ = split(argv_for(UNITS["strict"], ["/usr/bin/id"]))
    assert "PrivateNetwork=yes" in strict and "IPAddressAllow=localhost" in strict
    _, egress, _ = split(argv_for(UNITS["egress"], ["/usr/bin/id"]))
    assert "PrivateNetwork=yes" not in egress
    assert "IPAddressDeny=any" in egress and "IPAddressAllow=127.0.0.0/8 ::1/128 192.0.2.10/32 2001:db8::/64" in egress


def test_secrets_are_paths_never_values():
    _, props, _ = split(argv_for(UNITS["jit+credentials+limits"], ["/usr/bin/id"]))
    creds = [p for p in props if p.startswith("LoadCredential=")]
    assert creds == ["LoadCredential=API_KEY:/etc/ripdep/secrets/hello/API_KEY",
                     "LoadCredential=TOKEN:/etc/ripdep/secrets/hello/TOKEN"]
    assert "EnvironmentFile=/etc/ripdep/env/hello.env" in props
    assert not any(p.startswith(("Environment=", "SetCredential")) for p in props)


def test_fixed_options_a_unit_name_of_its_own_and_no_command_line_in_the_journal():
    options, _, _ = split(argv_for(UNITS["strict"], ["/usr/bin/id"]))
    assert options[:8] == ["--unit=ripdep-hello.run-0badc0de.service", "--description=ripdep run hello",
                           "--quiet", "--wait", "--collect", "--pipe", "--service-type=oneshot",
                           "--property=TimeoutStartSec=infinity"]
    options, _, _ = split(argv_for(UNITS["strict"], ["/usr/bin/id"], pty=True))
    assert "--pty" in options and "--pipe" not in options
    # never another app's unit: an app name has no "."
    assert "." not in "hello" and PATHS.run_unit_name("hello", "x") != PATHS.unit_name("hello-run-x")


HOSTILE = ["--property=User=root", "-p", "User=root", "+/bin/sh", "!x", "!!x", "@x", "-x", ":x", "--", "-",
           "%n", "%%", ";", "a b", "", "\n", "\\", '"', "'"]


def test_every_command_word_stays_an_argument_after_the_separator():
    argv = argv_for(UNITS["strict"], ["/usr/bin/printf", *HOSTILE])
    options, props, command = split(argv)
    assert command == ["/usr/bin/printf", *HOSTILE]  # no "$": unchanged
    # what precedes "--" is ripdep's alone, whatever the command says
    assert options == split(argv_for(UNITS["strict"], ["/usr/bin/true"]))[0]
    assert "User=root" not in props


@pytest.mark.parametrize("word,sent", [("$TOKEN", "$$TOKEN"), ("${TOKEN}", "$${TOKEN}"), ("$$", "$$$$"),
                                       ("a$b", "a$$b"), ("$", "$$")])
def test_dollar_is_doubled_so_pid1_expands_no_variable(word, sent):
    # PID 1 expands $VAR/${VAR} and $$ in ExecStart= arguments, also from systemd-run: the command
    # must get the caller's word, not the app's (or a secret's) value in its place
    _, _, command = split(argv_for(UNITS["strict"], ["/bin/echo", word]))
    assert command == ["/bin/echo", sent]


@pytest.mark.parametrize("program", ["bin/seed", "./manage.py", "/usr/bin/env", "sh"])
def test_program_resolves_like_the_units_start(program):
    exec_start = dict(run.service_directives(unit(start=[program, "x"])))["ExecStart"]
    assert run.program_path(program, CODE) == shlex.split(exec_start)[0]
    assert run.program_path("bin/seed", CODE) == f"{CODE}/bin/seed"


def test_resolve_program():
    which = {"psql": "/usr/bin/psql"}.get
    exists = {f"{CODE}/bin/seed", "/usr/bin/env"}.__contains__
    assert run.resolve_program(["psql", "-c", "x"], CODE, which, exists) == ["/usr/bin/psql", "-c", "x"]
    assert run.resolve_program(["bin/seed", "$X"], CODE, which, exists) == [f"{CODE}/bin/seed", "$X"]
    assert run.resolve_program(["/usr/bin/env"], CODE, which, exists) == ["/usr/bin/env"]
    for bad in (["nope"], ["bin/nope"], ["/usr/bin/nope"], [], [""], ["$SHELL"], ["${X}/y"]):
        with pytest.raises(BadInput):
            run.resolve_program(bad, CODE, which, exists)


def test_service_directives_reads_the_service_section_only():
    text = "[Unit]\nWants=x\n[Service]\n# c\n; c\nA=1\nB=two \\\n  words\nA=2\n\n[Install]\nWantedBy=y\n"
    assert run.service_directives(text) == [("A", "1"), ("B", "two words"), ("A", "2")]


def test_read_unit_refuses_a_missing_or_foreign_unit(tmp_path):
    paths = Paths(tmp_path)
    with pytest.raises(UnknownApp):
        run.read_unit("hello", paths)
    paths.units.mkdir(parents=True)
    paths.unit("hello").write_text("[Service]\nUser=root\n")
    with pytest.raises(Conflict):
        run.read_unit("hello", paths)
    paths.unit("hello").unlink()
    paths.unit("hello").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(Conflict):
        run.read_unit("hello", paths)
    paths.unit("hello").unlink()
    paths.unit("hello").write_text(UNITS["strict"])
    assert run.read_unit("hello", paths) == UNITS["strict"]


# --- the command: exit statuses before the start are ripdep's, after it the command's -----------

@pytest.fixture
def host(tmp_path, monkeypatch):
    """An installed app hello under tmp_path, root and systemd pretended; systemd-run never runs."""
    from ripdep import paths as paths_mod

    real_root = paths_mod.PATHS.root
    object.__setattr__(paths_mod.PATHS, "root", tmp_path)
    p = paths_mod.PATHS
    for folder in (p.manifests, p.state_root, p.units):
        folder.mkdir(parents=True)
    p.manifest("hello").write_text('source = "."\nstart = "app"\n')
    p.state("hello").write_text("port = 20000\n")
    p.unit("hello").write_text(render.render_unit(spec(), p))
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr("ripdep.host.systemd.systemd_is_pid1", lambda: True)
    monkeypatch.setattr("shutil.which", lambda name, path=None: f"/usr/bin/{name}")
    calls = []

    def supervise(argv, env, unit, pty):
        calls.append((argv, env, unit, pty))
        return 7
    monkeypatch.setattr(run, "supervise", supervise)
    yield calls
    object.__setattr__(paths_mod.PATHS, "root", real_root)


def invoke(*args: str):
    return CliRunner().invoke(main, ["run", *args])


def test_the_commands_status_is_passed_through(host):
    r = invoke("hello", "--", "sh", "-c", "exit 7", "--json")
    assert r.exit_code == 7, r.output
    argv, env, unit, pty = host[0]
    assert argv[-4:] == ["/usr/bin/sh", "-c", "exit 7", "--json"]  # after "--": the command's own
    assert unit.startswith("ripdep-hello.run-") and f"--unit={unit}" in argv
    assert pty is False  # no terminal under CliRunner: --pipe
    assert set(env) == {"PATH", "LANG"}  # nothing of ripdep's environment


def test_pty_is_asked_for(host):
    assert invoke("--pty", "hello", "--", "true").exit_code == 7
    assert host[0][3] is True and "--pty" in host[0][0]


@pytest.mark.parametrize("args,status", [
    (["Bad", "--", "true"], 2), (["ripdep-x", "--", "true"], 2), (["other", "--", "true"], 7),
    (["--json", "hello", "--", "true"], 2), (["hello"], 2), (["hello", "--", "bin/missing"], 2),
    (["hello", "--", "$HOME/x"], 2),
])
def test_refusals_before_the_start_keep_ripdeps_codes(host, args, status, monkeypatch):
    monkeypatch.setattr("os.path.isfile", lambda p: False)
    r = invoke(*args)
    assert r.exit_code == status, r.output
    assert host == []  # nothing was started


def test_not_root_is_a_precondition(host, monkeypatch):
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert invoke("hello", "--", "true").exit_code == 3


def test_a_deployed_app_without_its_unit_is_not_deployed(host):
    from ripdep.paths import PATHS as P

    P.unit("hello").unlink()
    r = invoke("hello", "--", "true")
    assert r.exit_code == 7 and "not deployed" in r.output


# --- supervise: the status, and a signal handed on rather than orphaning the command -----------

def test_supervise_returns_the_status():
    assert run.supervise([sys.executable, "-c", "raise SystemExit(7)"], dict(os.environ), "x.service", False) == 7
    assert run.supervise([sys.executable, "-c", "import os; os.kill(os.getpid(), 9)"], dict(os.environ),
                         "x.service", False) == 128 + 9


def test_supervise_hands_a_signal_on_and_restores_the_handlers(monkeypatch):
    # no unit of that name: `systemctl kill` fails (or is missing), so systemd-run itself is stopped
    before = signal.getsignal(signal.SIGTERM)
    code = f"import os, signal, time; os.kill({os.getpid()}, signal.SIGTERM); time.sleep(30)"
    status = run.supervise([sys.executable, "-c", code], dict(os.environ), "ripdep-none.run-0.service", False)
    assert status == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before
