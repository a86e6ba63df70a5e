"""The entry point: `ripdep list` answered before click and the CLI are imported (~55 ms of a
~70 ms run, for a command scripts call in loops); everything else, and any surprise on the way
(an unreadable folder), goes to ripdep.cli, which says it the usual way. tests/unit/test_fast.py
pins the output to the CLI's own, byte for byte."""

import os
import sys

MANIFESTS = "/etc/ripdep/apps"
VERSION = 2  # report.VERSION; the test checks they agree


def installed_apps(folder: str = MANIFESTS) -> list[str]:
    """ops.installed_apps without its imports: names of *.toml files that are valid app names."""
    import re

    app_name = re.compile(r"[a-z][a-z0-9-]{0,30}")  # names.APP_NAME; the test checks they agree
    try:
        found = [n[:-5] for n in os.listdir(folder) if n.endswith(".toml")]
    except FileNotFoundError:
        return []
    return sorted(n for n in found if app_name.fullmatch(n))


def list_document(apps: list[str]) -> dict:
    """report.envelope("list", msg=..., data={"apps": apps}), spelt out."""
    return {"version": VERSION, "command": "list", "app": None, "changed": False, "failed": False, "check": False,
            "msg": f"{len(apps)} app(s)", "url": None, "port": None, "actions": [], "steps": [], "health": None,
            "diff": [], "errors": [], "exit_code": 0, "data": {"apps": apps}}


def fast(argv: list[str]) -> int | None:
    if argv not in (["list"], ["list", "--json"]):
        return None
    try:
        apps = installed_apps()
    except OSError:
        return None
    if argv == ["list"]:
        sys.stdout.write("".join(f"{app}\n" for app in apps))
    else:
        import json

        sys.stdout.write(json.dumps(list_document(apps), indent=2, sort_keys=False) + "\n")
    return 0


def main() -> None:
    done = fast(sys.argv[1:])
    if done is not None:
        sys.exit(done)
    from ripdep.cli import main as cli

    sys.exit(cli())
