"""`ripdep config` and `ripdep secret`: change an app's non-secret env or its secrets, then apply.

Env values live in the operator's manifest, edited with tomlkit so its comments and formatting stay.
Secret values never pass through argv: `secret set` reads stdin, and the value goes only to the
root-only store. Every change is applied at once by a deploy (which restarts the app because its
env or credentials changed), unless --no-restart leaves it for the next deploy.
"""

from __future__ import annotations

import tomllib
from datetime import datetime, timezone

from ripdep import engine, names
from ripdep.errors import BadInput, Conflict
from ripdep.host import fs
from ripdep.lock import app_lock
from ripdep.ops import require_app
from ripdep.paths import PATHS, Paths
from ripdep.resources import Action, Change, Step
from ripdep.secret import Secret, check_name, generate, read_store, remove_secret, secret_mtime, write_secret
from ripdep.spec import RESERVED_ENV, load_manifest, parse_manifest


def edit_manifest(app: str, paths: Paths, mutate) -> bool:
    """Apply `mutate(doc)` to the installed manifest; validate the result; write it only if it differs."""
    import tomlkit

    path = paths.manifest(app)
    text = path.read_text()
    doc = tomlkit.parse(text)
    mutate(doc)
    new = tomlkit.dumps(doc)
    if new == text:
        return False
    parse_manifest(app, tomllib.loads(new), path)  # never write a manifest deploy would refuse
    st = path.stat()
    fs.write_file(path, new.encode(), mode=st.st_mode & 0o7777, uid=st.st_uid, gid=st.st_gid)
    return True


def _table(doc, name: str):
    import tomlkit

    if name not in doc:
        doc[name] = tomlkit.table()
    return doc[name]


def parse_assignments(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise BadInput(f"{pair!r} is not KEY=VALUE")
        names.check_env_key(key, "config set")
        names.check_env_value(value, f"config set {key}")
        if key in RESERVED_ENV:
            raise BadInput(f"{key} is set by ripdep and cannot be overridden")
        out[key] = value
    return out


def _apply(app: str, paths: Paths, changes: list[Change], no_restart: bool, progress,
           kind: str = "manifest") -> engine.RunResult:
    """Deploy after an edit (the caller holds the lock), or report the edit alone."""
    step = Step(f"{kind}:{app}", changes, "applied at the next deploy" if no_restart and changes else "")
    progress(step)
    if no_restart or not changes:
        return engine.RunResult(app, False, [step])
    result = engine.deploy(app, paths=paths, progress=progress, lock=False)
    result.steps.insert(0, step)
    return result


def config_set(app: str, pairs: tuple[str, ...], no_restart: bool, paths: Paths = PATHS,
               progress=lambda s: None) -> engine.RunResult:
    engine.require_root()
    require_app(app, paths)
    values = parse_assignments(pairs)
    with app_lock(app, paths):
        spec = load_manifest(app, paths.manifest(app))
        clash = sorted(set(values) & set(spec.secrets))
        if clash:
            raise Conflict(f"{clash[0]} is a secret of {app}: use ripdep secret set {app} {clash[0]}")
        changes = [Change(f"manifest:{app}", Action.UPDATE, f"set env {k}") for k, v in values.items() if spec.env.get(k) != v]
        edit_manifest(app, paths, lambda doc: _table(doc, "env").update(values))
        return _apply(app, paths, changes, no_restart, progress)


def config_unset(app: str, keys: tuple[str, ...], no_restart: bool, paths: Paths = PATHS,
                 progress=lambda s: None) -> engine.RunResult:
    engine.require_root()
    require_app(app, paths)
    for key in keys:
        names.check_env_key(key, "config unset")
    with app_lock(app, paths):
        spec = load_manifest(app, paths.manifest(app))
        present = [k for k in keys if k in spec.env]

        def mutate(doc):
            for key in present:
                del doc["env"][key]
        edit_manifest(app, paths, mutate)
        changes = [Change(f"manifest:{app}", Action.UPDATE, f"unset env {k}") for k in present]
        return _apply(app, paths, changes, no_restart, progress)


def config_get(app: str, key: str | None, paths: Paths = PATHS) -> dict[str, str]:
    require_app(app, paths)
    env = load_manifest(app, paths.manifest(app)).env
    if key is None:
        return env
    if key not in env:
        raise BadInput(f"{app} has no env variable {key}")
    return {key: env[key]}


def read_secret_value(raw: bytes) -> Secret:
    """A value from stdin: exactly as given, less one trailing newline (as `echo` adds)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput("the secret on stdin is not valid UTF-8") from None
    if text.endswith("\n"):
        text = text[:-1]
    if not text:
        raise BadInput("no secret on stdin", hint="ripdep secret set APP NAME < file  (or printf %s VALUE | ...)")
    if "\x00" in text:
        raise BadInput("the secret on stdin contains a NUL character, which an environment cannot hold")
    size = len(text.encode())
    if size > names.MAX_ENV_VALUE:  # it must fit in the app's environment, where exec limits apply
        raise BadInput(f"the secret on stdin is {size} bytes, more than the {names.MAX_ENV_VALUE} a secret may hold",
                       hint="keep large data (certificates, key files) in the app's state dir instead")
    return Secret(text)


def _secret_change(app: str, name: str, action: str) -> Change:
    return Change(f"secret:{app}/{name}", Action(action), f"{action} secret {name}")


def secret_set(app: str, name: str, value: Secret, no_restart: bool, paths: Paths = PATHS,
               progress=lambda s: None) -> engine.RunResult:
    # every secret NAME from a user is checked first: it becomes a file name in the store
    check_name(name, "secret set")
    engine.require_root()
    require_app(app, paths)
    with app_lock(app, paths):
        spec = load_manifest(app, paths.manifest(app))
        source = spec.secrets.get(name)
        if source is not None and source.kind == "ssm":
            raise Conflict(f"secret {name} of {app} comes from SSM ({source.ssm_name}): change it there and deploy")
        if name in spec.env:
            raise Conflict(f"{name} is a non-secret env variable of {app}: ripdep config unset {app} {name} first")
        changes = []
        if source is None:
            edit_manifest(app, paths, lambda doc: _table(doc, "secrets").update({name: "stored"}))
            changes.append(Change(f"manifest:{app}", Action.UPDATE, f"declare secret {name} (stored)"))
        current = read_store(paths.secrets(app)).get(name)
        if current != value:
            write_secret(paths.secrets(app), name, value)
            changes.append(_secret_change(app, name, "update" if current else "create"))
        return _apply(app, paths, changes, no_restart, progress, "secret")


def secret_rotate(app: str, name: str, no_restart: bool, paths: Paths = PATHS,
                  progress=lambda s: None) -> engine.RunResult:
    check_name(name, "secret rotate")
    engine.require_root()
    require_app(app, paths)
    with app_lock(app, paths):
        source = load_manifest(app, paths.manifest(app)).secrets.get(name)
        if source is None or source.kind != "generate":
            what = "not a secret of the app" if source is None else f"a {source.kind} secret"
            raise BadInput(f"{name} is {what}: only generated secrets rotate",
                           hint=f"set a new value with: ripdep secret set {app} {name}")
        write_secret(paths.secrets(app), name, generate())
        return _apply(app, paths, [_secret_change(app, name, "rotate")], no_restart, progress, "secret")


def secret_unset(app: str, name: str, no_restart: bool, paths: Paths = PATHS,
                 progress=lambda s: None) -> engine.RunResult:
    check_name(name, "secret unset")  # before anything: this name was deleted as a path, as root
    engine.require_root()
    require_app(app, paths)
    with app_lock(app, paths):
        spec = load_manifest(app, paths.manifest(app))
        changes = []
        if name in spec.secrets:
            def mutate(doc):
                del doc["secrets"][name]
            edit_manifest(app, paths, mutate)
            changes.append(Change(f"manifest:{app}", Action.UPDATE, f"remove secret {name} from the manifest"))
        if remove_secret(paths.secrets(app), name):
            changes.append(_secret_change(app, name, "remove"))
        if not changes:
            raise BadInput(f"{name} is not a secret of {app}")
        return _apply(app, paths, changes, no_restart, progress, "secret")


def secret_list(app: str, paths: Paths = PATHS) -> list[dict]:
    """Names, sources and last change of each secret; never a value."""
    require_app(app, paths)
    spec = load_manifest(app, paths.manifest(app))
    folder = paths.secrets(app)
    stored = set(read_store(folder))
    rows = []
    for name in sorted(set(spec.secrets) | stored):
        source = spec.secrets.get(name)
        kind = source.kind if source else "ssm-path" if spec.secrets_from else "undeclared"
        mtime = secret_mtime(folder, name)
        last_change = (None if mtime is None
                       else datetime.fromtimestamp(mtime, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
        rows.append({"name": name, "source": kind, "ssm_name": source.ssm_name if source else None,
                     "has_value": name in stored, "last_change": last_change})
    return rows
