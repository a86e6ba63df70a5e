"""Thin click adapters: flags in, one call, render out. Heavy modules are imported inside commands."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import click

from ripdep import __version__
from ripdep.errors import EXIT_INTERNAL, RipdepError


def fail(error: RipdepError, as_json: bool, document=None) -> None:
    from ripdep import report

    if as_json:
        report.print_json(document if document is not None else {
            "version": report.VERSION, "changed": False, "failed": True, "msg": error.message,
            "errors": [error.as_dict()], "exit_code": error.exit_status})
    report.print_error(error)
    sys.exit(error.exit_status)


def internal(debug: bool) -> None:
    if debug:
        traceback.print_exc()
    else:
        exc = sys.exc_info()[1]
        print(f"ripdep: internal error: {type(exc).__name__}: {exc} (run with --debug for a traceback)",
              file=sys.stderr)
    sys.exit(EXIT_INTERNAL)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", message="%(version)s")
def main() -> None:
    """ripdep: run many isolated apps on one Linux VM, each with its own user, database, hardened
    systemd unit, secrets and Caddy route. Exit codes: docs/exit-codes.md."""


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON document on stdout.")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
def init(as_json: bool, debug: bool) -> None:
    """Prepare this host (idempotent): folders, settings, PostgreSQL rules, Caddy imports."""
    from ripdep import engine, hostinit, report

    try:
        engine.require_root()
        steps = hostinit.init_host(progress=lambda s: None if as_json else report.print_step(s))
    except RipdepError as e:
        fail(e, as_json)
    except Exception:
        internal(debug)
    changed = any(s.changed for s in steps)
    if as_json:
        report.print_json({"version": report.VERSION, "command": "init", "changed": changed, "failed": False,
                           "msg": "host prepared" if changed else "nothing changed",
                           "actions": [c.as_dict() for s in steps for c in s.changes], "errors": [], "exit_code": 0})
    else:
        print("host: " + ("prepared" if changed else "unchanged"))


@main.command()
@click.argument("app")
@click.option("--manifest", "manifest_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Install this manifest as /etc/ripdep/apps/APP.toml and deploy it.")
@click.option("--check", is_flag=True, help="Show what would change; change nothing.")
@click.option("--diff", "show_diff", is_flag=True, help="Show unified diffs of unit, env (secrets masked) and route.")
@click.option("--json", "as_json", is_flag=True, help="Print only a JSON document on stdout.")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
def deploy(app: str, manifest_file: Path | None, check: bool, show_diff: bool, as_json: bool, debug: bool) -> None:
    """Deploy APP: user, database, secrets, code, hardened unit, Caddy route; then health-check it."""
    from ripdep import engine, report

    progress = (lambda s: None) if as_json else report.print_step
    try:
        result = engine.deploy(app, manifest_file, check=check, progress=progress)
    except RipdepError as e:
        fail(e, as_json, report.deploy_document(app, None, e, check) if as_json else None)
    except Exception:
        internal(debug)
    if check and not as_json:
        for step in result.steps:
            report.print_step(step)
    if show_diff and not as_json:
        for step in result.steps:
            for change in step.changes:
                if change.diff:
                    sys.stdout.write(change.diff)
    if as_json:
        report.print_json(report.deploy_document(app, result, None, check, show_diff))
    else:
        report.print_deploy_summary(result)
