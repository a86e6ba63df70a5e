"""files:NAME — the manifest's [files]: config files rendered from templates in the app's source
into $CONFIG_DIRECTORY (/etc/ripdep/files/NAME), for apps that read their port, database or paths
from a file rather than the environment.

Rendered by root, so the template is untrusted input: read from inside the source folder without
following links (like the code copy, it must be readable by every user), rendered by jinja2's
sandbox without a loader (no include, no import, no attribute tricks), undefined names are errors.
The result is root's, mode 0640 with the app's group: the app reads it and cannot change it; other
apps cannot read it. A secret goes in by value only where the manifest says `secrets = true`;
otherwise a template names the credential's path (credential("KEY"), delivery = "credentials").
Re-rendered on every deploy; a changed file restarts the app (its digest is in the started hash).
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from ripdep import render
from ripdep.context import Context
from ripdep.errors import BadInput
from ripdep.resources import Action, Change, RemoveFile, RemoveTree, Step
from ripdep.resources.file import DesiredFile, plan_file

MAX_TEMPLATE = 1024 * 1024
MAX_OUTPUT = 4 * 1024 * 1024
MASK = "********"


def read_template(source: Path, relative: str, where: str, public: bool = True) -> str:
    """The template's text, opened one folder at a time below `source` without following a link.
    public=False: `source` is a release tree ripdep built (checked when it was copied; 0640 now)."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    parts = Path(relative).parts
    fd = None
    try:
        fd = os.open(source, flags | os.O_DIRECTORY)
        for part in parts[:-1]:
            nxt = os.open(part, flags | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        final = os.open(parts[-1], flags | os.O_NONBLOCK, dir_fd=fd)
    except OSError as e:
        raise BadInput(f"{where}: cannot open {relative} in {source}: {e.strerror} (a link or a missing file?)",
                       hint="the template must be a regular file inside the source folder, reached without links") from None
    finally:
        if fd is not None:
            os.close(fd)
    with os.fdopen(final, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise BadInput(f"{where}: {relative} is not a regular file")
        if public and not st.st_mode & stat.S_IROTH:
            raise BadInput(f"{where}: {relative} is not readable by every user (chmod o+r): ripdep renders "
                           "only what the app could read itself")
        raw = f.read(MAX_TEMPLATE + 1)
    if len(raw) > MAX_TEMPLATE:
        raise BadInput(f"{where}: {relative} is larger than {MAX_TEMPLATE // 1024} KiB")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"{where}: {relative} is not UTF-8 text") from None


def variables(ctx: Context) -> dict[str, str]:
    """The values a template sees: the app's environment (never a secret) and its folders."""
    values = render.app_environment(ctx.spec, ctx.allocated_port, ctx.paths)
    values["STATE_DIRECTORY"] = str(ctx.paths.app_state_dir(ctx.app))
    if ctx.spec.delivery == "credentials" and ctx.spec.secrets:
        values["CREDENTIALS_DIRECTORY"] = f"/run/credentials/{ctx.unit_name}"
    return values


def render_file(ctx: Context, name: str, masked: bool = False) -> bytes:
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    conf = ctx.spec.files[name]
    where = f"manifest key 'files.{name}'"
    if ctx.pin is not None:  # a rollback: the templates of the release it goes back to
        text = read_template(ctx.paths.releases_root(ctx.app) / ctx.pin.tree, conf.template, where, public=False)
    else:
        text = read_template(ctx.spec.source, conf.template, where)

    def credential(key: str) -> str:
        if key not in ctx.spec.secrets or ctx.spec.delivery != "credentials":
            raise BadInput(f"{where}: credential({key!r}) needs secret {key} and delivery = \"credentials\"")
        return f"/run/credentials/{ctx.unit_name}/{key}"

    def secret(key: str) -> str:
        if not conf.secrets:
            raise BadInput(f"{where}: the template asks for secret {key!r} by value",
                           hint=f"say so with files.{name} = {{ template = \"...\", secrets = true }}, or use "
                                f"credential({key!r}) with delivery = \"credentials\"")
        if key not in ctx.secrets:
            raise BadInput(f"{where}: secret({key!r}) is not a secret of this app")
        if masked:
            return MASK
        revealed.append(key)
        return ctx.secrets[key].reveal()

    revealed: list[str] = []

    env = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False,
                                        keep_trailing_newline=True)
    leaked = False
    try:
        try:
            out = env.from_string(text).render(**variables(ctx), credential=credential, secret=secret)
        except Exception:
            if not revealed:
                raise
            leaked = True  # reported below, outside this handler: no exception chain holds the value
    except jinja2.TemplateError as e:
        lineno = getattr(e, "lineno", None)
        line = f" line {lineno}" if lineno else ""
        raise BadInput(f"{where}: template {conf.template}{line}: {e}",
                       hint="templates see PORT, HOST, MOUNT_PATH, DATABASE_URL, STATE_DIRECTORY, CONFIG_DIRECTORY, "
                            "the env keys, credential(\"KEY\") and, with secrets = true, secret(\"KEY\")") from None
    except BadInput:
        raise
    except (RecursionError, MemoryError):
        raise BadInput(f"{where}: template {conf.template} does not render in bounded time and size") from None
    except Exception as e:  # 1/0, "a" + 1, an include without a loader: the template is wrong
        raise BadInput(f"{where}: template {conf.template}: {type(e).__name__}: {e}") from None
    if leaked:
        masked_error(ctx, name)
    data = out.encode()
    if len(data) > MAX_OUTPUT:
        raise BadInput(f"{where}: template {conf.template} renders {len(data)} bytes, more than {MAX_OUTPUT}")
    return data


def masked_error(ctx: Context, name: str) -> None:
    """A template failed after it was given a secret's value: its error may hold the value, or a
    part of it (a lookup keyed by the secret: "'dict object' has no attribute '<value>'"). Raise
    the error of a rendering with every secret masked instead, or, when only the real values make it
    fail, one that says so without any detail."""
    conf = ctx.spec.files[name]
    render_file(ctx, name, masked=True)
    raise BadInput(f"manifest key 'files.{name}': template {conf.template} fails only with the secrets' real "
                   "values; the error is not shown (it may contain one)",
                   hint="render it with secret(\"KEY\") used as a plain value; a template that branches or "
                        "looks up on a secret cannot be checked without showing it") from None


def hidden(_live) -> bytes:
    """A live file with secrets in it, as a diff may show it."""
    return b"(the live file may hold secrets: not shown)\n"


def plan(ctx: Context) -> Step:
    folder = ctx.paths.config_dir(ctx.app)
    rid = f"files:{ctx.app}"
    present = ctx.host.list_dir(folder)
    if not ctx.spec.files:
        ctx.files_digest = ""
        gone = [Change(rid, Action.REMOVE, f"remove {folder} (no [files] any more)", ops=(RemoveTree(folder),))]
        return Step(rid, gone if present is not None else [])
    user = ctx.host.read_user(ctx.app)
    digest = hashlib.sha256()
    changes: list[Change] = []
    for name in sorted(ctx.spec.files):
        content = render_file(ctx, name)
        digest.update(name.encode() + b"\0" + content + b"\0")
        secret = ctx.spec.files[name].secrets
        want = DesiredFile(folder / name, content, 0o640, gid=user.gid if user else 0,
                           masked=render_file(ctx, name, masked=True) if secret else None,
                           dirs=((ctx.paths.config_root, 0o711), (folder, 0o711)), group=ctx.app)
        changes += plan_file(ctx.host, f"file:{ctx.app}/{name}", want,
                             current_masked=hidden if secret else None)
    for stray in sorted(set(present or ()) - set(ctx.spec.files)):
        changes.append(Change(f"file:{ctx.app}/{stray}", Action.REMOVE, f"remove {folder / stray}",
                              ops=(RemoveFile(folder / stray),)))
    ctx.files_digest = digest.hexdigest()
    return Step(rid, changes, f"{len(ctx.spec.files)} file(s) in {folder}")
