"""The release phase: the manifest's `release` command (a migration, say), run once per release
before the switch, as the app: its user, env, secrets, DATABASE_URL and sandbox (the new unit's
[Service] lines, as `ripdep run` takes them), in the new release's tree, as a transient unit whose
output goes to the journal and, its last lines, to the deploy's report.

When the app has a database and a release before this one, a verified backup (the same as
`ripdep backup`) is taken first. A failed backup or a failed command stops the deploy before the
switch: the old release keeps serving (exit 13, release_failed).
"""

from __future__ import annotations

import secrets
import shutil
from dataclasses import replace

from ripdep import releases
from ripdep.errors import ReleaseFailed, RipdepError

OUTPUT_LINES = 20


def release_argv(app: str, unit_text: str, command: list[str], unit: str, systemd_run: str) -> list[str]:
    """systemd-run for the release command (pure): the unit's sandbox properties, no terminal and
    no pipe (its output is the journal's), the command after "--" with ${NAME} left for PID 1 to
    expand as in `start` (spec.py checked each name) and every other $ doubled."""
    from ripdep.render import variables_only
    from ripdep.run import sandbox_properties

    return [systemd_run, f"--unit={unit}", f"--description=ripdep release phase of {app}", "--quiet", "--wait",
            "--collect", "--service-type=oneshot", "--property=TimeoutStartSec=infinity",
            *(f"--property={p}" for p in sandbox_properties(unit_text)),
            "--", command[0], *(variables_only(w) for w in command[1:])]


def run_release_phase(ctx, release_id: str) -> None:
    from ripdep.host.proc import run
    from ripdep.host.systemd import journal_tail
    from ripdep.run import SYSTEMD_PATH, resolve_program

    release = ctx.pending
    assert release is not None and release.id == release_id
    app, paths = ctx.app, ctx.paths
    live = next((r for r in ctx.releases if r.id == ctx.state.release), None)
    backup_name = ""
    if ctx.spec.database and live is not None:
        from ripdep.dataops import _backup_locked

        try:
            done = _backup_locked(ctx.spec, ctx.settings, paths, lambda msg: None)
        except RipdepError as e:
            raise ReleaseFailed(f"the verified backup before release {release.id} failed: {e.message}; release "
                                f"{live.id} still serves", hint=e.hint, details=e.details) from None
        backup_name = done.backup.name if done.backup else ""
    tree = paths.releases_root(app) / release.tree
    unit_text = ctx.unit_text.replace(f"WorkingDirectory={paths.code(app)}\n", f"WorkingDirectory={tree}\n")
    command = resolve_program(list(ctx.spec.release), tree)
    unit = f"ripdep-{app}.release-{secrets.token_hex(4)}.service"
    systemd_run = shutil.which("systemd-run", path=SYSTEMD_PATH) or "/usr/bin/systemd-run"
    status = run(release_argv(app, unit_text, command, unit, systemd_run), check=False).returncode
    output = journal_tail(unit, 200)
    ctx.release_output = output[-OUTPUT_LINES:]
    if status != 0:
        serving = f"release {live.id} still serves" if live else "the app was not started"
        raise ReleaseFailed(f"the release command of release {release.id} exited {status}; {serving}",
                            hint=f"its output: journalctl -u {unit}; fix it and deploy again",
                            details=[f"backup before it: {backup_name}"] * bool(backup_name)
                            + ["output:"] + [f"  {line}" for line in output[-OUTPUT_LINES:]])
    done_release = replace(release, release_ran=True, backup=backup_name)
    ctx.pending = done_release
    releases.write_record(ctx.host, paths, app, done_release)
