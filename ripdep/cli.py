"""Thin click adapters: flags in, one call, render out. Heavy modules are imported inside commands."""

from __future__ import annotations

import signal
import sys
import traceback
from pathlib import Path
from typing import NoReturn

import click

from ripdep import BUILD
from ripdep.errors import EXIT_INTERNAL, BadInput, RipdepError

JSON = click.option("--json", "as_json", is_flag=True, help="Print only a JSON document on stdout.")
DEBUG = click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")


def complete_app(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Bash completion of an APP argument (`_RIPDEP_COMPLETE=bash_source ripdep` prints the script
    install.sh installs): the apps with a manifest in /etc/ripdep/apps. `sudo ripdep deploy <TAB>`
    completes as the user, who cannot read that folder (0750 root): then the apps' code folders,
    which every user can list (/srv/ripdep, 0755), as can systemctl list-units."""
    import os

    from ripdep import names, ops
    from ripdep.paths import PATHS

    try:
        if os.access(PATHS.manifests, os.R_OK | os.X_OK):
            apps = ops.installed_apps()
        else:
            apps = sorted(p.name for p in PATHS.code_root.iterdir() if names.APP_NAME.fullmatch(p.name))
    except OSError:
        return []
    return [app for app in apps if app.startswith(incomplete)]


APP = click.argument("app", shell_complete=complete_app)


def outcome(command: str, app: str | None, steps=(), error: RipdepError | None = None, check: bool = False,
            exit_code: int | None = None) -> None:
    """The one hook where every command's outcome is reported (fail, internal, run_command and the
    commands that report their own success): a command that changes the host gets its audit line,
    a metrics refresh and, failed, its notification (ripdep/fleet.py). Reading commands return at once."""
    from ripdep.audit import MUTATING

    if command in MUTATING and not check:
        from ripdep import fleet

        fleet.after_command(command, app, steps, error, check, exit_code)


def fail(command: str, error: RipdepError, as_json: bool, app: str | None = None, check: bool = False) -> NoReturn:
    """Every refusal and failure ends here, so its JSON document is the same envelope as a success."""
    from ripdep import report

    outcome(command, app, error.result.steps if error.result else (), error, check)

    if as_json:
        # a run that failed after it changed the host reports what it changed, where, and the probe
        report.print_json(report.run_document(command, app or "", error.result, error, check) if error.result
                          else report.envelope(command, app, check=check, error=error))
    report.print_error(error)
    sys.exit(error.exit_status)


def internal(command: str, debug: bool, as_json: bool, app: str | None = None) -> NoReturn:
    """A bug or an unexpected host error: still one document on stdout with --json (exit 1)."""
    from ripdep import report

    exc = sys.exc_info()[1]
    error = RipdepError(f"internal error: {type(exc).__name__}: {exc}", hint="run with --debug for a traceback")
    outcome(command, app, error=error)
    if as_json:
        report.print_json(report.envelope(command, app, error=error))
    if debug:
        traceback.print_exc()
    else:
        print(f"ripdep: internal error: {type(exc).__name__}: {exc} (run with --debug for a traceback)",
              file=sys.stderr)
    sys.exit(EXIT_INTERNAL)


def attempt(command: str, call, as_json: bool, debug: bool, app: str | None = None, check: bool = False):
    """call(), with a failure rendered as the command's envelope (and its exit code)."""
    try:
        return call()
    except RipdepError as e:
        fail(command, e, as_json, app, check)
    except Exception:
        internal(command, debug, as_json, app)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(BUILD, "--version", message="%(version)s")
def main() -> None:
    """ripdep: run many isolated apps on one Linux VM, each with its own user, database, hardened
    systemd unit, secrets and Caddy route. Exit codes: docs/exit-codes.md."""
    # SIGTERM (Ansible's timeout sends one) unwinds like an exception: temp folders are removed,
    # a running child command is killed, locks are released; the next run converges.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


@main.command()
@click.option("--check", is_flag=True, help="Show what would change; change nothing.")
@click.option("--diff", "show_diff", is_flag=True, help="Show unified diffs of pg_hba.conf and the Caddyfile.")
@JSON
@DEBUG
def init(check: bool, show_diff: bool, as_json: bool, debug: bool) -> None:
    """Prepare this host (idempotent): folders, settings, PostgreSQL rules, Caddy imports."""
    from ripdep import hostinit, report

    def call():
        return hostinit.init_host(progress=lambda s: None if as_json else report.print_step(s), check=check)

    steps = attempt("init", call, as_json, debug, check=check)
    outcome("init", None, steps, check=check)
    changed = any(s.changed for s in steps)
    if show_diff and not as_json:
        sys.stdout.write("".join(c.diff for s in steps for c in s.changes))
    if as_json:
        msg = ("would prepare the host" if changed else "nothing to change") if check else \
            ("host prepared" if changed else "nothing changed")
        report.print_json(report.envelope("init", steps=steps, msg=msg, check=check, with_diff=show_diff))
    else:
        # what init changes on a host already prepared (an upgrade's migration) is said, never silent
        for change in (c for s in steps for c in s.changes):
            print(f"  {'would ' if check else ''}{change.detail}")
        print("host: " + ("would change" if check and changed else "prepared" if changed else "unchanged"))


def run_command(command: str, app: str, call, as_json: bool, debug: bool, check: bool = False,
                show_diff: bool = False, live: bool = True) -> None:
    """Run a command that returns a RunResult and render it. live: the call prints each step on
    stderr as it happens (through `progress`); otherwise the steps are printed at the end."""
    from ripdep import report

    progress = (lambda s: None) if as_json else report.print_step
    result = attempt(command, lambda: call(progress), as_json, debug, app, check)
    outcome(command, app, result.steps, check=check)
    if not as_json and (check or not live):
        for step in result.steps:
            report.print_step(step)
    if show_diff and not as_json:
        for step in result.steps:
            for change in step.changes:
                sys.stdout.write(change.diff)
    if as_json:
        report.print_json(report.run_document(command, app, result, None, check, show_diff))
    else:
        report.print_summary(result)


@main.command()
@APP
@click.option("--manifest", "manifest_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Install this manifest as /etc/ripdep/apps/APP.toml and deploy it.")
@click.option("--check", is_flag=True, help="Show what would change; change nothing.")
@click.option("--diff", "show_diff", is_flag=True, help="Show unified diffs of unit, env (secrets masked) and route.")
@click.option("--like", "like", metavar="OTHER", shell_complete=complete_app,
              help="A new app as a copy of OTHER: same source and settings, its own user, database, port, route "
                   "and secrets (never copied).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="With --like: an env value of the copy, or route.host / route.path / route.tls.")
@JSON
@DEBUG
def deploy(app: str, manifest_file: Path | None, check: bool, show_diff: bool, like: str | None,
           sets: tuple[str, ...], as_json: bool, debug: bool) -> None:
    """Deploy APP: user, database, secrets, code, hardened unit, Caddy route; then health-check it."""
    from ripdep import engine

    def call(progress):
        if like is None:
            if sets:
                raise BadInput("--set goes with --like", hint="change an app's env with ripdep config set")
            return engine.deploy(app, manifest_file, check=check, progress=progress)
        if manifest_file is not None:
            raise BadInput("--like and --manifest: give one of them")
        from ripdep.like import deploy_like

        return deploy_like(app, like, sets, check=check, progress=progress)

    run_command("deploy", app, call, as_json, debug, check, show_diff)


def _unit_command(name: str, doc: str) -> None:
    """start, stop and restart: each a desired state handed to the deploy engine (engine.START...)."""

    @main.command(name=name, help=doc)
    @APP
    @click.option("--check", is_flag=True, help="Show what would change; change nothing.")
    @click.option("--diff", "show_diff", is_flag=True, help="Show unified diffs of what would change.")
    @JSON
    @DEBUG
    def command(app: str, check: bool, show_diff: bool, as_json: bool, debug: bool) -> None:
        from ripdep import engine

        verb = getattr(engine, name.upper())
        run_command(name, app, lambda progress: engine.converge(app, verb=verb, check=check, progress=progress),
                    as_json, debug, check, show_diff)


_unit_command("start", "Enable and start APP, wait for its health check, and record that it should run.")
_unit_command("stop", "Stop and disable APP and record that it stays stopped (across reboots and deploys).")
_unit_command("restart", "Restart APP and wait for its health check.")


@main.command(name="list")
@JSON
@DEBUG
def list_apps(as_json: bool, debug: bool) -> None:
    """The apps ripdep manages, one per line."""
    from ripdep import ops, report

    apps = attempt("list", ops.installed_apps, as_json, debug)
    if as_json:
        report.print_json(report.envelope("list", msg=f"{len(apps)} app(s)", data={"apps": apps}))
    else:
        for app in apps:
            print(app)


@main.command()
@click.argument("apps", nargs=-1, shell_complete=complete_app)
@click.option("--strict", is_flag=True, help="Exit 10 if any app's unit failed or its health check fails.")
@JSON
@DEBUG
def status(apps: tuple[str, ...], strict: bool, as_json: bool, debug: bool) -> None:
    """Every app's (or the named apps') state, health through Caddy, resources and last deploy."""
    from ripdep import ops, report
    from ripdep import status as status_mod
    from ripdep.errors import Degraded

    def call():
        for app in apps:
            ops.require_app(app)
        return status_mod.collect(list(apps) or ops.installed_apps())

    rows = attempt("status", call, as_json, debug)
    degraded = [r.app for r in rows if r.degraded]
    # --strict turns degraded apps into a failure: exit 10, and `failed` and `errors` say so
    error = Degraded(f"degraded: {', '.join(degraded)}") if strict and degraded else None
    if as_json:
        msg = f"{len(rows)} app(s), {len(degraded)} degraded" if rows else "no apps deployed"
        report.print_json(report.envelope("status", msg=msg, error=error, data={
            "apps": [r.as_dict() for r in rows], "degraded": bool(degraded), "ripdep": BUILD}))
    else:
        print(status_mod.table(rows, colour=sys.stdout.isatty()) if rows else "no apps deployed")
    if error:
        print(f"ripdep: {error.message}", file=sys.stderr)
        sys.exit(error.exit_status)


@main.command()
@APP
@click.option("-n", "--lines", default=50, show_default=True, help="Number of journal lines.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("--since", help="Show lines since this time (journalctl syntax, e.g. '1 hour ago').")
@click.option("--process", help="The journal of this [processes] entry (all its instances) instead of the web process.")
@click.option("--job", help="The journal of this [cron] job instead of the web process.")
def logs(app: str, lines: int, follow: bool, since: str | None, process: str | None, job: str | None) -> None:
    """APP's journal (a thin journalctl wrapper)."""
    from ripdep import ops

    try:
        ops.exec_logs(app, lines, follow, since, process=process, job=job)
    except RipdepError as e:
        fail("logs", e, False, app)


NO_RESTART = click.option("--no-restart", is_flag=True, help="Only record the change; the next deploy applies it.")


@main.group()
def config() -> None:
    """An app's non-secret environment, kept in its manifest."""


@config.command(name="set")
@APP
@click.argument("pairs", nargs=-1, required=True, metavar="KEY=VALUE...")
@NO_RESTART
@JSON
@DEBUG
def config_set(app: str, pairs: tuple[str, ...], no_restart: bool, as_json: bool, debug: bool) -> None:
    """Set env variables and apply them (restarting the app)."""
    from ripdep import appconfig

    run_command("config set", app, lambda p: appconfig.config_set(app, pairs, no_restart, progress=p), as_json, debug)


@config.command(name="unset")
@APP
@click.argument("keys", nargs=-1, required=True)
@NO_RESTART
@JSON
@DEBUG
def config_unset(app: str, keys: tuple[str, ...], no_restart: bool, as_json: bool, debug: bool) -> None:
    """Remove env variables and apply (restarting the app)."""
    from ripdep import appconfig

    run_command("config unset", app, lambda p: appconfig.config_unset(app, keys, no_restart, progress=p), as_json, debug)


@config.command(name="get")
@APP
@click.argument("key", required=False)
@JSON
@DEBUG
def config_get(app: str, key: str | None, as_json: bool, debug: bool) -> None:
    """Show env variables (not secrets) from the manifest."""
    from ripdep import appconfig, report

    env = attempt("config get", lambda: appconfig.config_get(app, key), as_json, debug, app)
    if as_json:
        report.print_json(report.envelope("config get", app, msg=f"{len(env)} env variable(s)", data={"env": env}))
    else:
        for k, v in env.items():
            print(f"{k}={v}")


@main.group()
def secret() -> None:
    """An app's secrets: values never pass through argv or output."""


@secret.command(name="set")
@APP
@click.argument("name")
@NO_RESTART
@JSON
@DEBUG
def secret_set(app: str, name: str, no_restart: bool, as_json: bool, debug: bool) -> None:
    """Set secret NAME from stdin (one trailing newline is dropped) and apply it."""
    from ripdep import appconfig

    def call(progress):
        if sys.stdin.isatty():
            print(f"value of {name} (input hidden is not attempted; end with Ctrl-D):", file=sys.stderr)
        value = appconfig.read_secret_value(sys.stdin.buffer.read())
        return appconfig.secret_set(app, name, value, no_restart, progress=progress)

    run_command("secret set", app, call, as_json, debug)


@secret.command(name="rotate")
@APP
@click.argument("name")
@NO_RESTART
@JSON
@DEBUG
def secret_rotate(app: str, name: str, no_restart: bool, as_json: bool, debug: bool) -> None:
    """Give generated secret NAME a new value and restart the app."""
    from ripdep import appconfig

    run_command("secret rotate", app, lambda p: appconfig.secret_rotate(app, name, no_restart, progress=p),
                as_json, debug)


@secret.command(name="unset")
@APP
@click.argument("name")
@NO_RESTART
@JSON
@DEBUG
def secret_unset(app: str, name: str, no_restart: bool, as_json: bool, debug: bool) -> None:
    """Remove secret NAME from the manifest and the store, and apply."""
    from ripdep import appconfig

    run_command("secret unset", app, lambda p: appconfig.secret_unset(app, name, no_restart, progress=p),
                as_json, debug)


@secret.command(name="list")
@APP
@JSON
@DEBUG
def secret_list(app: str, as_json: bool, debug: bool) -> None:
    """Names, sources and last change of the app's secrets (never values)."""
    from ripdep import appconfig, report

    rows = attempt("secret list", lambda: appconfig.secret_list(app), as_json, debug, app)
    if as_json:
        report.print_json(report.envelope("secret list", app, msg=f"{len(rows)} secret(s)", data={"secrets": rows}))
    else:
        for r in rows:
            source = r["source"] + (f" {r['ssm_name']}" if r["ssm_name"] else "")
            print(f"{r['name']}  {source}  {r['last_change'] or 'no value'}")


class BackupGroup(click.Group):
    """`ripdep backup APP` takes a backup; `ripdep backup list APP` lists them ("list" is a
    reserved app name, so the two never clash)."""

    def resolve_command(self, ctx, args):
        if args and args[0] in self.commands and args[0] != "take":
            return super().resolve_command(ctx, args)
        return "take", self.commands["take"], args

    def shell_complete(self, ctx, incomplete):
        from click.shell_completion import CompletionItem

        return super().shell_complete(ctx, incomplete) + [CompletionItem(app) for app in
                                                          complete_app(ctx, self, incomplete)]


@main.group(cls=BackupGroup, invoke_without_command=False)
def backup() -> None:
    """Backups: `ripdep backup APP` takes and verifies one; `ripdep backup list APP` lists them."""


@backup.command(name="take", hidden=True)
@APP
@JSON
@DEBUG
def backup_take(app: str, as_json: bool, debug: bool) -> None:
    """Take a verified backup of APP."""
    from ripdep import dataops, report

    progress = (lambda msg: None) if as_json else (lambda msg: print(msg, file=sys.stderr, flush=True))
    result = attempt("backup", lambda: dataops.backup_app(app, progress=progress), as_json, debug, app)
    outcome("backup", app, report.backup_steps(result))
    b = result.backup
    if as_json:
        report.print_json(report.envelope("backup", app, steps=report.backup_steps(result),
                                          msg=f"backup {b.name} verified",
                                          data={"backup": b.as_dict(), "removed": result.removed}))
    else:
        where = f", copied to {b.remote}" if b.remote else ""
        print(f"{app}: backup {b.name} verified ({b.size_bytes} bytes) at {b.path}{where}")


@backup.command(name="list")
@APP
@JSON
@DEBUG
def backup_list(app: str, as_json: bool, debug: bool) -> None:
    """APP's backups: local and remote copies, with their verification."""
    from ripdep import dataops

    def line(r: dict) -> str:
        state = {True: "verified", False: "FAILED", None: "unverified"}[r["verified"]] if r["local"] else "-"
        return f"{r['name']}  local:{state if r['local'] else 'no'}  remote:{r['remote'] or '-'}  {r['size_bytes']} bytes"

    list_rows("backup list", app, lambda: dataops.list_backups(app), "backup", line, as_json, debug)


def list_rows(command: str, app: str, call, noun: str, line, as_json: bool, debug: bool) -> None:
    """A command that lists an app's things: one envelope with data[NOUNs], or a line per row."""
    from ripdep import report

    rows = attempt(command, call, as_json, debug, app)
    if as_json:
        report.print_json(report.envelope(command, app, msg=f"{len(rows)} {noun}(s)", data={f"{noun}s": rows}))
        return
    for r in rows:
        print(report.printable(line(r)).rstrip())


@main.command()
@APP
@click.argument("backup_ref", metavar="BACKUP")
@click.option("--yes", is_flag=True, help="Confirm: the app's database, state dir and secrets are replaced "
              "(an app not on this host is created from the backup).")
@JSON
@DEBUG
def restore(app: str, backup_ref: str, yes: bool, as_json: bool, debug: bool) -> None:
    """Restore APP from BACKUP (a folder name or path): checksums, database, state dir, secrets; start.
    An app not on this host is created from the backup's manifest first."""
    from ripdep import dataops

    run_command("restore", app, lambda p: dataops.restore_app(app, backup_ref, yes, progress=p), as_json, debug)


@main.command()
@APP
@click.option("--yes", is_flag=True, help="Confirm the removal (nothing is asked interactively).")
@click.option("--backup", "take_backup", is_flag=True, help="Take and verify a backup first.")
@click.option("--check", is_flag=True, help="Show what would be removed, and whether the backup rule allows it.")
@click.option("--diff", "show_diff", is_flag=True, help="Show the files that go, as diffs (env values masked).")
@JSON
@DEBUG
def destroy(app: str, yes: bool, take_backup: bool, check: bool, show_diff: bool, as_json: bool, debug: bool) -> None:
    """Remove every resource of APP; needs a fresh verified backup (or --backup). Backups are kept."""
    from ripdep import dataops

    run_command("destroy", app, lambda p: dataops.destroy_app(app, yes, take_backup, progress=p, check=check),
                as_json, debug, check, show_diff)


@main.command()
@APP
@JSON
@DEBUG
def releases(app: str, as_json: bool, debug: bool) -> None:
    """APP's releases: id, time, code hash, what changed, outcome, which is live (docs/releases.md)."""
    from ripdep import rollback as rollback_mod

    def line(r: dict) -> str:
        mark = "live" if r["live"] else "previous" if r["previous"] else ""
        return f"{r['id']}  {r['code_hash'][:12]}  {r['changed'] or '-':<16} {r['outcome']:<12} {mark:<8} {r['reason']}"

    list_rows("releases", app, lambda: rollback_mod.list_releases(app), "release", line, as_json, debug)


@main.command()
@APP
@click.argument("release", required=False)
@click.option("--with-data", is_flag=True, help="Also restore the backup taken before the live release's release phase.")
@click.option("--yes", is_flag=True, help="Confirm --with-data (the data written since that backup is lost).")
@JSON
@DEBUG
def rollback(app: str, release: str | None, with_data: bool, yes: bool, as_json: bool, debug: bool) -> None:
    """Go back to RELEASE (default: the one before the live one): its code and manifest, restarted and
    health-checked; deploys then keep it until one installs a manifest."""
    from ripdep import rollback as rollback_mod

    run_command("rollback", app, lambda progress: rollback_mod.rollback(app, release, with_data, yes, progress=progress),
                as_json, debug)


def _fleet_report(command: str, outcomes, error, as_json: bool, check: bool) -> None:
    """plan/apply: one envelope with every app's outcome, or a table; the exit code says the rest."""
    from ripdep import report

    steps = [s for o in outcomes for s in o.steps]
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.outcome] = counts.get(o.outcome, 0) + 1
    msg = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no apps"
    outcome(command, None, steps, error, check)
    if as_json:
        report.print_json(report.envelope(command, None, steps=steps, check=check, msg=msg, error=error,
                                          data={"apps": [o.as_dict() for o in outcomes]}))
    else:
        width = max([len(o.app) for o in outcomes] + [3])
        print(f"{'APP':<{width}}  {'OUTCOME':<10} {'CHANGES':>7}  RELEASE")
        for o in outcomes:
            note = f"  {o.error['message']}" if o.error else ""
            print(report.printable(f"{o.app:<{width}}  {o.outcome:<10} {len(o.actions):>7}  {o.release or '-'}{note}"))
        print(msg)
    if error is not None:
        sys.exit(error.exit_status)


@main.command()
@click.argument("apps", nargs=-1, shell_complete=complete_app)
@JSON
@DEBUG
def plan(apps: tuple[str, ...], as_json: bool, debug: bool) -> None:
    """What a deploy of every app (or APPS) would change, changing nothing: drift, new code, stopped
    services. Exit 0 in sync, 14 changes pending, 15 an app could not be planned."""
    from ripdep import fanout
    from ripdep.errors import ChangesPending, FleetFailed

    outcomes = attempt("plan", lambda: fanout.plan(fanout.select(apps, False)), as_json, debug, check=True)
    failed = [o.app for o in outcomes if o.outcome == "error"]
    pending = [o.app for o in outcomes if o.outcome in ("changes", "busy")]
    error = (FleetFailed(f"could not plan {', '.join(failed)}") if failed else
             ChangesPending(f"changes pending: {', '.join(pending)}", hint="ripdep apply APP... (or --all)")
             if pending else None)
    _fleet_report("plan", outcomes, error, as_json, True)


@main.command()
@click.argument("apps", nargs=-1, shell_complete=complete_app)
@click.option("--all", "every", is_flag=True, help="Every app ripdep manages.")
@click.option("--parallel", default=1, show_default=True, help="Apps converged at the same time (after the canaries).")
@click.option("--canary", default=0, show_default=True, help="Converge the first N apps one by one first.")
@click.option("--keep-going", is_flag=True, help="Go on after a failed app instead of stopping the fan-out.")
@JSON
@DEBUG
def apply(apps: tuple[str, ...], every: bool, parallel: int, canary: int, keep_going: bool, as_json: bool,
          debug: bool) -> None:
    """Deploy APPS (or --all) from their installed manifests: the canaries first, then N at a time; the
    first failure stops the fan-out (exit 15) and the apps not started are reported as skipped."""
    from ripdep import fanout, report
    from ripdep.errors import FleetFailed

    def call():
        chosen = fanout.select(apps, every, need_choice=True)
        say = (lambda o: None) if as_json else \
            (lambda o: print(report.printable(f"{o.app}: {o.outcome}"), file=sys.stderr))
        return fanout.apply(chosen, parallel, canary, keep_going, progress=say)

    outcomes = attempt("apply", call, as_json, debug)
    failed = [o.app for o in outcomes if o.outcome == "failed"]
    skipped = [o.app for o in outcomes if o.outcome == "skipped"]
    error = FleetFailed(f"failed: {', '.join(failed)}" + (f"; skipped: {', '.join(skipped)}" if skipped else ""),
                        hint="ripdep plan shows what is left; ripdep releases APP what each serves") if failed else None
    _fleet_report("apply", outcomes, error, as_json, False)


@main.command(name="run")
@APP
@click.argument("command", nargs=-1, required=True, metavar="-- CMD [ARGS]...")
@click.option("--pty/--pipe", "pty", default=None,
              help="Give the command a terminal (--pty) or the caller's own stdin/stdout/stderr (--pipe). "
                   "Default: --pty when stdin and stdout are terminals.")
@click.option("--json", "json_refused", is_flag=True, hidden=True)
@DEBUG
def run(app: str, command: tuple[str, ...], pty: bool | None, json_refused: bool, debug: bool) -> None:
    """Run CMD as APP: its user, code folder, env, secrets, DATABASE_URL and sandbox, in a transient
    unit. stdin, stdout, stderr and the exit status are the command's (docs/run.md)."""
    from ripdep import run as run_mod
    from ripdep.errors import BadInput

    def call():
        if json_refused:
            raise BadInput("ripdep run has no --json: the command's own output and exit status are passed through",
                           hint="put --json after '--' if it is the command's flag: ripdep run APP -- CMD --json")
        return run_mod.run_command(app, list(command), pty)

    # no JSON document: a refusal is a message on stderr and its documented exit status; once the
    # command has started, the exit status is the command's
    status = attempt("run", call, False, debug, app)
    outcome("run", app, exit_code=status if isinstance(status, int) else None)
    sys.exit(status)


@main.command()
@click.argument("app", required=False, shell_complete=complete_app)
@click.option("-n", "--lines", type=click.IntRange(min=1), help="Only the last N entries.")
@JSON
@DEBUG
def history(app: str | None, lines: int | None, as_json: bool, debug: bool) -> None:
    """Who changed what, from the audit log (/var/log/ripdep/audit.jsonl): every command that
    changed the host, or APP's."""
    from ripdep import audit, report

    rows = attempt("history", lambda: audit.history(app, lines), as_json, debug, app)
    if as_json:
        report.print_json(report.envelope("history", app, msg=f"{len(rows)} entr{'y' if len(rows) == 1 else 'ies'}",
                                          data={"entries": rows}))
    else:
        for row in rows:
            print(report.printable(audit.line(row)))


@main.command(name="fleet-check", hidden=True)
@DEBUG
def fleet_check(debug: bool) -> None:
    """ripdep-fleet.timer: metrics for Prometheus, scrape targets, notifications (docs/fleet.md)."""
    import json

    from ripdep import fleet

    print(json.dumps(attempt("fleet-check", fleet.fleet_check, False, debug)))


@main.command(name="notify-event", hidden=True)
@click.argument("event", type=click.Choice(["unit_failed"]))
@click.argument("unit")
@DEBUG
def notify_event(event: str, unit: str, debug: bool) -> None:
    """OnFailure= of an app's units (ripdep-notify@UNIT.service): spool the event and deliver it."""
    from ripdep import notify

    sys.exit(0 if attempt("notify-event", lambda: notify.unit_failed(unit), False, debug) else 1)


@main.command(name="notify-deliver", hidden=True)
@click.option("--now", "ignore_backoff", is_flag=True, help="Try every spooled event now, whatever its retry delay.")
@DEBUG
def notify_deliver(ignore_backoff: bool, debug: bool) -> None:
    """ripdep-notify.service: deliver the spooled events that are due."""
    import json

    from ripdep import notify

    print(json.dumps(attempt("notify-deliver", lambda: notify.deliver(ignore_backoff=ignore_backoff), False, debug)))
