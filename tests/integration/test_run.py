"""`ripdep run APP -- CMD`: the command runs as the app, with its env, secrets, database and the very
sandbox of its unit, in a transient unit; stdin, stdout and the exit status pass through; no secret
reaches an argv, `ps`, `systemctl show` or the journal."""

import re
import shlex
import time

import pytest

from conftest import PROBE_SRC, App, manifest

SRC = "/var/tmp/run-src"  # the probe app plus a program of its own, bin/seed
SEED = '#!/bin/sh\necho "seed $1 as $(id -un) in $(pwd)"\n'


@pytest.fixture(scope="module")
def apps(ct):
    ct.run("rm", "-rf", SRC)
    ct.write(f"{SRC}/app.py", ct.run("cat", f"{PROBE_SRC}/app.py", check=True).stdout)
    ct.write(f"{SRC}/bin/seed", SEED, mode="0755")
    ct.run("chmod", "0755", SRC, f"{SRC}/bin", check=True)
    made = {}
    for name, text in {
        "run-env": manifest(source=SRC, raw='[env]\nGREETING = "hi there"\n[secrets]\nTOKEN = "generate"\n'),
        "run-cred": manifest(raw='delivery = "credentials"\n[secrets]\nTOKEN = "generate"\n'
                                 '[limits]\nmemory = "256M"\ncpu = "50%"\ntasks = 64\n'),
        "run-egress": manifest(raw='[network]\negress = ["192.0.2.10"]\n'),
    }.items():
        app = App(ct, name)
        code, doc = app.deploy(text)
        assert code == 0, doc
        made[name] = app
    return made


def run(ct, app: str, *command: str, input: str | None = None):
    return ct.run("ripdep", "run", app, "--", *command, input=input, timeout=120)


def token(ct, app: str) -> str:
    return ct.run("cat", f"/etc/ripdep/secrets/{app}/TOKEN", check=True).stdout


def test_runs_as_the_app_in_its_code_folder_with_its_env(apps, ct):
    proc = run(ct, "run-env", "sh", "-c", 'id -un; pwd; echo "$DATABASE_URL"; echo "$GREETING"; echo "$STATE_DIRECTORY"')
    assert proc.returncode == 0, proc.stderr
    tree = ct.run("readlink", "-f", "/srv/ripdep/run-env", check=True).stdout.strip()  # the live release's
    assert proc.stdout.splitlines() == ["run-env", tree, "postgresql:///run-env?host=/run/postgresql",
                                        "hi there", "/var/lib/ripdep/apps/run-env"]
    assert proc.stderr == ""  # systemd-run says nothing of its own (--quiet)


def test_a_relative_program_is_in_the_code_folder(apps, ct):
    proc = run(ct, "run-env", "bin/seed", "$HOME")
    assert proc.returncode == 0, proc.stderr
    tree = ct.run("readlink", "-f", "/srv/ripdep/run-env", check=True).stdout.strip()
    assert proc.stdout == f"seed $HOME as run-env in {tree}\n"  # no variable expanded


def test_its_own_database_over_the_unix_socket_and_no_other(apps, ct):
    sql = "create table if not exists t (x int); insert into t values (1); select current_user, current_database()"
    proc = run(ct, "run-env", "sh", "-c", f'psql "$DATABASE_URL" -qAtc "{sql}"')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "run-env|run-env"
    other = run(ct, "run-env", "psql", "postgresql:///run-cred?host=/run/postgresql", "-Atc", "select 1")
    assert other.returncode != 0 and "run-cred" in other.stderr
    postgres = run(ct, "run-env", "psql", "postgresql:///postgres?host=/run/postgresql", "-Atc", "select 1")
    assert postgres.returncode != 0


def test_secret_in_env_and_credential_without_a_trace(apps, ct):
    env_value, cred_value = token(ct, "run-env"), token(ct, "run-cred")
    assert len(env_value) >= 20 and len(cred_value) >= 20
    trace = ["strace", "--seccomp-bpf", "-f", "-qq", "-s", "65536", "-e", "trace=execve", "-o"]
    proc = ct.run(*trace, "/root/run-trace.env", "ripdep", "run", "run-env", "--", "sh", "-c", 'printf %s "$TOKEN"')
    assert proc.returncode == 0 and proc.stdout == env_value  # the command has it ...
    proc = ct.run(*trace, "/root/run-trace.cred", "ripdep", "run", "run-cred", "--", "sh", "-c",
                  'cat "$CREDENTIALS_DIRECTORY/TOKEN"; echo; echo "${TOKEN:-not in env}"')
    assert proc.returncode == 0 and proc.stdout == f"{cred_value}\nnot in env\n"
    traces = ct.sh("cat /root/run-trace.*", check=True).stdout
    assert "systemd-run" in traces and "EnvironmentFile=/etc/ripdep/env/run-env.env" in traces
    assert "LoadCredential=TOKEN:/etc/ripdep/secrets/run-cred/TOKEN" in traces
    # ... while it runs: not in any argv (ps), the transient unit or its file
    held = hold(ct, "run-env", "run-cred")
    try:
        seen = ct.sh("ps -eo args; for u in " + " ".join(held.values()) +
                     "; do systemctl show $u; cat /run/systemd/transient/$u; done", check=True).stdout
        assert all(u in seen for u in held.values())
    finally:
        release(ct, held)
    journal = ct.run("journalctl", "--no-pager", "-o", "verbose").stdout
    assert "ripdep run run-env" in journal  # the journal names the run, not its command line
    for value in (env_value, cred_value):
        assert value not in traces, "secret in a process argument"
        assert value not in seen, "secret in ps, systemctl show or the transient unit file"
        assert value not in journal, "secret in the journal (the command's output included)"


def test_stdin_and_the_exit_status_pass_through(apps, ct):
    data = "line 1\n\ttab and $dollar\nlast line without newline"
    proc = run(ct, "run-env", "cat", input=data)
    assert proc.returncode == 0 and proc.stdout == data
    assert run(ct, "run-env", "sh", "-c", "exit 7").returncode == 7
    assert run(ct, "run-env", "sh", "-c", "echo out; echo err >&2; exit 113").returncode == 113
    killed = run(ct, "run-env", "sh", "-c", "kill -KILL $$")
    assert killed.returncode == 255  # killed by a signal: systemd-run's status for it
    assert run(ct, "run-env", "tty").stdout.strip() == "not a tty"  # no terminal: --pipe
    # a program root can see but the app cannot (ProtectHome=): systemd's EXIT_EXEC, from the command
    ct.write("/root/only-root.sh", "#!/bin/sh\necho reached\n", mode="0755")
    assert run(ct, "run-env", "/root/only-root.sh").returncode == 203


@pytest.mark.parametrize("args,status", [
    (["nope-app", "--", "true"], 7), (["Bad_Name", "--", "true"], 2), (["--json", "run-env", "--", "true"], 2),
    (["run-env", "--", "no-such-program"], 2), (["run-env", "--", "bin/no-such"], 2), (["run-env"], 2),
])
def test_ripdeps_own_refusals_keep_their_codes(apps, ct, args, status):
    proc = ct.run("ripdep", "run", *args)
    assert proc.returncode == status, proc.stderr
    assert proc.stdout == ""


def test_a_terminal_when_one_is_attached(apps, ct):
    proc = ct.run("script", "-qec", "ripdep run run-env -- sh -c 'tty; id -un; exit 3'", "/dev/null")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "/dev/pts/" in proc.stdout and "run-env" in proc.stdout


def test_words_stay_words(apps, ct):
    words = ["$TOKEN", "${TOKEN}", "$$", "%n", "--property=User=root", "-p", "+x", "!x", "@x", ":x", "a b", ""]
    proc = run(ct, "run-env", "/usr/bin/printf", "[%s]\\n", *words)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"[{w}]" for w in words]
    assert run(ct, "run-env", "+/usr/bin/id").returncode == 2  # never a prefix: no such program
    assert run(ct, "run-env", "id", "-u").stdout.strip() != "0"


def test_the_sandbox_holds(apps, ct):
    proc = run(ct, "run-env", "sh", "-c", 'touch /srv/ripdep/run-env/x 2>&1; touch "$STATE_DIRECTORY/ok" && echo wrote')
    assert "Read-only file system" in proc.stdout and "wrote" in proc.stdout
    connect = "import socket, sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=3)"
    for port in ("80", "5432"):  # Caddy and PostgreSQL on the host's loopback: not in its namespace
        assert run(ct, "run-env", "python3", "-c", connect, port).returncode != 0
    # an egress app runs in the host's network (allowed: localhost), as its unit does
    assert run(ct, "run-egress", "python3", "-c", connect, "80").returncode == 0


# systemctl show properties that name the unit or describe its process, start and dependencies
NOT_SANDBOX = re.compile(r"(Id|Names|Description|Transient|FragmentPath|SourcePath|UnitFileState|UnitFilePreset|"
                         r"InvocationID|Refs|Job|CollectMode|Type|Restart\w*|TimeoutStartUSec|RemainAfterExit|"
                         r"Exec\w+|MainPID|ControlPID|GuessMainPID|ControlGroup\w*|Active\w*|SubState|LoadState|"
                         r"Inactive\w*|StateChange\w*|Condition\w*|Assert\w*|After|Before|Wants|WantedBy|"
                         r"ConsistsOf|Requires\w*|StartLimit\w*|Memory(Current|Available)|CPUUsageNSec|TasksCurrent|"
                         r"IP(Ingress|Egress)\w+|IO\w+(Bytes|Operations)|NRestarts|StatusText|Result|UID|GID|"
                         r"DropInPaths|NeedDaemonReload|CanReload|CanStart|CanStop|Perpetual|Triggered\w*|OnFailure\w*)")


def hold(ct, *apps: str) -> dict[str, str]:
    """Start `sleep 300` as a run of each app; app -> its transient unit, active."""
    held = {}
    for app in apps:
        out = ct.sh(f"ripdep run {app} -- sleep 300 >/dev/null 2>&1 </dev/null & "
                    f"for i in $(seq 100); do u=$(systemctl list-units --plain --no-legend "
                    f"'ripdep-{app}.run-*' | awk '{{print $1}}'); [ -n \"$u\" ] && echo $u && exit 0; sleep 0.1; done; "
                    "exit 1", check=True).stdout.split()
        held[app] = out[0]
    return held


def release(ct, held: dict[str, str]) -> None:
    ct.run("systemctl", "stop", *held.values())


def properties(ct, unit: str) -> dict[str, str]:
    text = ct.run("systemctl", "show", "--all", unit, check=True).stdout
    return {k: v for k, v in (line.split("=", 1) for line in text.splitlines()) if not NOT_SANDBOX.fullmatch(k)}


@pytest.mark.parametrize("app", ["run-env", "run-cred", "run-egress"])
def test_the_transient_unit_has_the_apps_sandbox(apps, ct, app):
    held = hold(ct, app)
    try:
        unit = held[app]
        # read again while they differ: a unit being (re)loaded at that moment (another run's
        # daemon-reload, the fleet timer's work) has shown its IP lists empty for an instant; a
        # real difference stays and fails with both values
        for _ in range(10):
            ours, its = properties(ct, unit), properties(ct, f"ripdep-{app}.service")
            differ = {k: (v, its.get(k)) for k, v in ours.items() if its.get(k) != v}
            if not differ:
                break
            time.sleep(0.5)
        assert differ == {}, f"(transient unit, app unit): {differ}"
        assert set(ours) == set(its)
        for key in ("NoNewPrivileges", "ProtectSystem", "PrivateNetwork", "PrivateUsers", "SystemCallFilter",
                    "IPAddressAllow", "User", "WorkingDirectory", "EnvironmentFiles", "CapabilityBoundingSet"):
            assert key in ours  # really compared
        exposure = ct.sh(f"systemd-analyze security {shlex.quote(unit)} | tail -1; "
                         f"systemd-analyze security ripdep-{app}.service | tail -1", check=True).stdout
        scores = re.findall(r"exposure level for \S+: (\d+\.\d+)", exposure)
        assert len(scores) == 2 and scores[0] == scores[1], exposure
    finally:
        release(ct, held)


def test_an_interrupt_reaches_the_command_and_leaves_no_unit(apps, ct):
    proc = ct.sh("ripdep run run-env -- sh -c 'trap \"echo got it; exit 42\" INT; sleep 300 & wait' & p=$!; "
                 "for i in $(seq 100); do systemctl list-units --plain --no-legend 'ripdep-run-env.run-*' "
                 "| grep -q . && break; sleep 0.1; done; sleep 0.5; kill -INT $p; wait $p; echo status=$?; "
                 "sleep 0.5; systemctl list-units --all --plain --no-legend 'ripdep-run-env.run-*' | wc -l")
    assert proc.stdout.split() == ["got", "it", "status=42", "0"], proc.stdout + proc.stderr
