"""`ripdep run APP -- CMD ARGS...`: one command as the app, in a transient unit with the app's
sandbox (docs/run.md).

The sandbox has one source: the app's installed unit, /etc/systemd/system/ripdep-APP.service, which
render.render_unit() wrote from units/app.service.j2 at the last deploy. Its [Service] directives
become systemd-run properties, minus the few that describe how a long-running service starts and
restarts (NOT_FOR_RUN). So the command gets exactly what the running app has: User=/Group=,
WorkingDirectory= (the code folder), EnvironmentFile= and LoadCredential= (paths only: PID 1 reads
the values, never ripdep and never an argv), StateDirectory=, the limits and every hardening line,
PrivateNetwork= or the egress IPAddressAllow= included. [Unit] and [Install] (Wants= of the proxy
socket, After=, start limits) are not taken.

ripdep reads nothing the app controls: the unit is root's, the env file and credentials are opened
by PID 1. After the checks it runs systemd-run (--wait, and --pipe or --pty): with --pipe the
command's stdin, stdout and stderr are the caller's own descriptors; ripdep exits with systemd-run's
status, which is the command's.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
from pathlib import Path
from typing import Callable

from ripdep import names, ops
from ripdep.errors import BadInput, Conflict, PreconditionFailed, UnknownApp
from ripdep.paths import PATHS, Paths

# systemd's own search path for a bare program name in ExecStart= (so `run` finds what the unit would)
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# [Service] directives of the app's unit that describe the long-running service, not its sandbox.
# Every other directive of the unit is passed on as it is.
NOT_FOR_RUN = frozenset({
    "Type", "Restart", "RestartSec", "RemainAfterExit", "PIDFile", "NotifyAccess", "Sockets",
    "SuccessExitStatus", "RestartPreventExitStatus", "RestartForceExitStatus", "RestartSteps",
    "RestartMaxDelaySec", "TimeoutSec", "TimeoutStartSec", "TimeoutStopSec", "TimeoutAbortSec",
    "RuntimeMaxSec", "RuntimeRandomizedExtraSec", "WatchdogSec", "FileDescriptorStoreMax",
})
NOT_FOR_RUN_PREFIXES = ("Exec",)  # ExecStart=, ExecStartPre=, ExecReload=, ExecStop=...


def service_directives(unit_text: str) -> list[tuple[str, str]]:
    """(key, value) of every assignment in the unit's [Service] section, in order, repeats kept
    (SystemCallFilter=, LoadCredential=). A line ending in a backslash continues on the next."""
    out: list[tuple[str, str]] = []
    section = None
    pending = ""
    for raw in unit_text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1].rstrip() + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        if section == "Service" and "=" in line:
            key, value = line.split("=", 1)
            out.append((key.strip(), value.strip()))
    return out


# systemd-run 252 takes these words of IPAddressAllow=/IPAddressDeny= only as the whole value
# ("localhost 192.0.2.10/32" fails to parse), the unit file parser in any position: in a list they
# become the prefixes the unit file parser gives them (tests/integration/test_run.py compares
# `systemctl show` of both units for an egress app)
IP_KEYWORDS = {"any": "0.0.0.0/0 ::/0", "localhost": "127.0.0.0/8 ::1/128",
               "link-local": "169.254.0.0/16 fe80::/64", "multicast": "224.0.0.0/4 ff00::/8"}


def sandbox_properties(unit_text: str) -> list[str]:
    """The app unit's [Service] directives that apply to a one-off command, as KEY=VALUE."""
    out = []
    for key, value in service_directives(unit_text):
        if key in NOT_FOR_RUN or key.startswith(NOT_FOR_RUN_PREFIXES):
            continue
        if key in ("IPAddressAllow", "IPAddressDeny") and len(value.split()) > 1:
            value = " ".join(IP_KEYWORDS.get(word, word) for word in value.split())
        out.append(f"{key}={value}")
    return out


def program_path(program: str, code_dir: Path) -> str:
    """The unit's rule for start[0] (render.render_unit): a path with a '/' that is not absolute is
    relative to the code folder; an absolute path or a bare name stays as it is."""
    if "/" in program and not program.startswith("/"):
        return str(code_dir / program)
    return program


def exec_word(word: str) -> str:
    """An argv word as PID 1 must receive it: systemd expands $VAR, ${VAR} and $$ in every argument
    of ExecStart= (also when it comes over D-Bus, as from systemd-run), so '$' is doubled and the
    command receives exactly the caller's word (no app variable, no secret, is substituted in)."""
    return word.replace("$", "$$")


def systemd_run_argv(app: str, unit_text: str, command: list[str], *, pty: bool, unit_id: str,
                     paths: Paths = PATHS, systemd_run: str = "/usr/bin/systemd-run") -> list[str]:
    """The whole systemd-run command line for `ripdep run APP -- COMMAND` (pure). command[0] is
    already resolved to an absolute path (resolve_program). Every property is a path or a setting,
    never a secret value; the command follows "--", so no word of it is read as an option, and
    systemd-run sends it to PID 1 as a list (path, argv), so no word becomes an ExecStart= prefix
    (+ ! @ - :) or a property."""
    argv = [
        systemd_run,
        f"--unit={paths.run_unit_name(app, unit_id)}",
        f"--description=ripdep run {app}",  # not the command line: the journal shows this
        "--quiet", "--wait", "--collect",
        "--pty" if pty else "--pipe",
        "--service-type=oneshot",  # a signal that kills the command is a failure, not a clean stop
        "--property=TimeoutStartSec=infinity",  # a long migration is not a slow start
    ]
    argv += [f"--property={p}" for p in sandbox_properties(unit_text)]
    return [*argv, "--", command[0], *(exec_word(w) for w in command[1:])]


def resolve_program(command: list[str], code_dir: Path,
                    which: Callable[[str], str | None] = lambda name: shutil.which(name, path=SYSTEMD_PATH),
                    is_program: Callable[[str], bool] = lambda p: os.path.isfile(p) and os.access(p, os.X_OK),
                    ) -> list[str]:
    """command with its program made absolute as the unit would find it, or BadInput (exit 2)
    before anything starts. What is checked is only that the file exists and has an execute bit;
    the app's user may still be refused it (then the command exits 203, systemd's EXIT_EXEC)."""
    if not command:
        raise BadInput("no command given", hint="ripdep run APP -- CMD [ARGS...]")
    program = command[0]
    if not program or "$" in program or "\0" in program:
        raise BadInput(f"invalid program name {program!r}")
    path = program_path(program, code_dir)
    if "/" not in path:
        found = which(path)
        if not found:
            raise BadInput(f"{program}: no such program in {SYSTEMD_PATH}",
                           hint="give a path: absolute, or relative to the app's code folder (bin/seed)")
        path = found
    elif not is_program(path):
        raise BadInput(f"{path}: no such program, or not executable",
                       hint="a path with a '/' that is not absolute is relative to the app's code folder")
    return [path, *command[1:]]


def read_unit(app: str, paths: Paths = PATHS) -> str:
    """The app's installed unit: the sandbox `run` reproduces (root's file, never the app's)."""
    from ripdep.host import fs
    from ripdep.render import MARKER

    try:
        content = fs.read_file(paths.unit(app)).content
    except OSError as e:  # a link where the unit should be (O_NOFOLLOW), or unreadable
        raise Conflict(f"{paths.unit(app)} cannot be read: {e.strerror}") from None
    if content is None:
        raise UnknownApp(f"app {app!r} is not deployed (no unit {paths.unit_name(app)})",
                         hint=f"deploy it first: ripdep deploy {app}")
    text = content.decode("utf-8", "replace")
    if text.split("\n", 1)[0] != MARKER.format(app=app):
        raise Conflict(f"{paths.unit(app)} was not written by ripdep", hint="ripdep runs only what it deployed")
    return text


def run_command(app: str, command: list[str], pty: bool | None, paths: Paths = PATHS) -> int:
    """Check everything, then run the command through systemd-run and return its exit status. Every
    refusal is a RipdepError raised before the command starts; from then on the status is the
    command's."""
    names.check_app_name(app)
    if os.geteuid() != 0:
        raise PreconditionFailed("ripdep must run as root", hint="use sudo ripdep ...")
    from ripdep.host.systemd import require_systemd

    require_systemd()
    ops.require_app(app, paths)
    unit_text = read_unit(app, paths)
    systemd_run = shutil.which("systemd-run", path=SYSTEMD_PATH)
    if not systemd_run:
        raise PreconditionFailed("systemd-run is missing", hint="apt-get install systemd")
    command = resolve_program(command, paths.code(app))
    if pty is None:
        pty = sys.stdin.isatty() and sys.stdout.isatty()
    unit_id = secrets.token_hex(4)
    argv = systemd_run_argv(app, unit_text, command, pty=pty, unit_id=unit_id, paths=paths, systemd_run=systemd_run)
    # systemd-run's own environment: a fixed PATH, and the terminal type that --pty hands on. None
    # of ripdep's environment reaches the command (the unit's environment is the app's).
    env = {"PATH": SYSTEMD_PATH, "LANG": "C.UTF-8"}
    if pty and os.environ.get("TERM"):
        env["TERM"] = os.environ["TERM"]
    return supervise(argv, env, paths.run_unit_name(app, unit_id), pty)


def supervise(argv: list[str], env: dict[str, str], unit: str, pty: bool) -> int:
    """Run systemd-run and return its exit status (the command's). systemd-run 252 leaves the unit
    running when it is itself interrupted, so ripdep stays its parent and hands a SIGINT, SIGTERM or
    SIGHUP on to the command (`systemctl kill`), then waits for its status as usual. With --pipe,
    systemd-run gets a process group of its own: a ^C on the terminal reaches ripdep, which passes
    it on, rather than ending systemd-run and orphaning the command. With --pty it stays in the
    terminal's foreground group (it reads the terminal), and ^C reaches the command through the pty."""
    import signal
    import subprocess

    def quietly(*argv: str) -> int:
        try:
            return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL).returncode
        except OSError:
            return 127

    received: list[int] = []
    children: list[subprocess.Popen] = []

    def forward(signum, frame):
        received.append(signum)
        if quietly("systemctl", "kill", f"--signal={signum}", "--", unit) != 0:
            for child in children:  # the unit is not there yet: make systemd-run give up starting it
                if child.poll() is None:
                    child.terminate()

    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    before = {signum: signal.signal(signum, forward) for signum in handled}
    try:
        if received:  # interrupted before anything started
            return 128 + received[0]
        children.append(subprocess.Popen(argv, env=env, cwd="/", process_group=None if pty else 0))
        if received:  # a signal while systemd-run was being started: hand it on now
            forward(received[-1], None)
        status = children[0].wait()
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
    if received:
        # systemd-run may have been stopped just as it created the unit: leave no command behind
        quietly("systemctl", "stop", "--", unit)
    return 128 - status if status < 0 else status
