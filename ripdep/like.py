"""`ripdep deploy NEW --like APP [--set KEY=VALUE ...]`: onboard a copy of APP (docs/fleet.md).

The new app's manifest is APP's installed one, with what must differ changed: its route (the default
`/NEW/`; a host or an explicit path of APP's is refused unless --set gives NEW its own), SSM names
with APP as a path segment pointing at NEW's, and the --set values. Secrets are never copied: a
"generate" secret is generated anew, a "stored" one must be set for NEW, SSM ones are NEW's
parameters. The result is validated like any manifest before anything changes, then deployed."""

from __future__ import annotations

import re

from ripdep import names
from ripdep.errors import BadInput, UnknownApp
from ripdep.paths import PATHS, Paths

MANIFEST_KEYS = {"route.path", "route.host", "route.tls"}  # --set KEY=VALUE that are not env keys


def _ssm(value: str, like: str, new: str) -> str:
    return re.sub(rf"(?<=/){re.escape(like)}(?=/)", new, value)


def manifest_like(new: str, like: str, sets: tuple[str, ...], paths: Paths = PATHS) -> str:
    import tomlkit

    names.check_app_name(new)
    names.check_app_name(like)
    if new == like:
        raise BadInput("--like names the app being deployed")
    if not paths.manifest(like).exists():
        raise UnknownApp(f"--like {like}: app {like!r} is not managed by ripdep; nothing was changed")
    if paths.manifest(new).exists() or paths.state(new).exists():
        raise BadInput(f"app {new} exists already: --like onboards a new copy",
                       hint=f"deploy it as it is: ripdep deploy {new}")
    doc = tomlkit.parse(paths.manifest(like).read_text())
    route = doc.get("route")
    if route is not None:
        if route.get("path") == f"/{like}/":
            del route["path"]
        if route.get("host") or route.get("path"):
            given = {s.split("=", 1)[0] for s in sets}
            if not given & {"route.host", "route.path"}:
                raise BadInput(f"{like} has a route of its own ({route.get('host') or route.get('path')}): "
                               f"give {new} one", hint=f"--set route.host=... or --set route.path=/{new}/")
            for key in ("host", "path"):
                route.pop(key, None)
    for key, value in (doc.get("secrets") or {}).items():
        if isinstance(value, str) and value.startswith("ssm:"):
            doc["secrets"][key] = _ssm(value, like, new)
    if "secrets_from" in doc:
        doc["secrets_from"] = [_ssm(v, like, new) if isinstance(v, str) else v for v in doc["secrets_from"]]
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep:
            raise BadInput(f"--set {item!r}: expected KEY=VALUE")
        if key in MANIFEST_KEYS:
            table = doc.setdefault("route", tomlkit.table())
            table[key.split(".", 1)[1]] = value.lower() == "true" if key == "route.tls" else value
        else:
            names.check_env_key(key, f"--set {key}")
            names.check_env_value(value, f"--set {key}")
            doc.setdefault("env", tomlkit.table())[key] = value
    text = tomlkit.dumps(doc)
    from ripdep.spec import parse_manifest

    parse_manifest(new, tomlkit.parse(text).unwrap(), paths.manifest(new))  # bad input names the key, before anything
    return text


def deploy_like(new: str, like: str, sets: tuple[str, ...], check: bool = False, paths: Paths = PATHS, progress=None):
    from ripdep import engine
    from ripdep.resources.manifest import temporary

    engine.require_root()
    with temporary(new, manifest_like(new, like, sets, paths)) as manifest_file:
        return engine.deploy(new, manifest_file, check=check, paths=paths, progress=progress or (lambda s: None))
