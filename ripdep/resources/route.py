"""route:NAME — the app's Caddy snippet (path or host route), validated with the whole configuration
before it goes live; reloaded only when something changed; rolled back if the reload fails."""

from __future__ import annotations

import hashlib

from ripdep import names, render
from ripdep.context import Context
from ripdep.errors import Conflict, RipdepError
from ripdep.resources import Action, CaddySwap, Change, Claim, Record, Step
from ripdep.resources.file import refuse_foreign, unified_diff


def desired_snippets(ctx: Context) -> dict:
    """path -> wanted bytes (None = must not exist), for both kinds of route."""
    text = render.render_snippet(ctx.spec, ctx.paths).encode()
    host = ctx.spec.route.host is not None
    return {
        ctx.paths.path_snippet(ctx.app): None if host else text,
        ctx.paths.host_snippet(ctx.app): text if host else None,
    }


def route_key(ctx: Context) -> str:
    return f"host:{ctx.spec.route.host}" if ctx.spec.route.host else ctx.spec.route.path or ""


def refuse_taken(ctx: Context, key: str) -> None:
    owner = next((s.app for s in ctx.host.all_states(ctx.paths) if s.app != ctx.app and s.route == key), None)
    if owner:
        raise Conflict(f"route {key.removeprefix('host:')} is already claimed by app {owner}",
                       hint="give this app another route.path or route.host in its manifest")


def claim(ctx: Context) -> Step:
    """Refuse a path or host another app already claims (Caddy would silently shadow a duplicate
    path). The claim is recorded only when applied, checked again under the host lock then, so two
    parallel deploys cannot both take it and a refused deploy leaves no claim behind."""
    rid, key = f"claim:{ctx.app}", route_key(ctx)
    if ctx.spec.route.host:
        names.check_host_not_site(ctx.spec.route.host, ctx.settings.caddy_path_site)
    refuse_taken(ctx, key)
    if ctx.state.route == key:
        return Step(rid, [], key.removeprefix("host:"))
    return Step(rid, [Change(rid, Action.CLAIM, f"claim route {key.removeprefix('host:')}", ops=(Claim(key),))])


def plan(ctx: Context) -> Step:
    rid = f"route:{ctx.app}"
    marker = render.MARKER.format(app=ctx.app)
    wanted = desired_snippets(ctx)
    current = {p: ctx.host.read_file(p).content for p in wanted}
    changes = []
    for path, want in wanted.items():
        have = current[path]
        refuse_foreign(path, have, marker)
        if have == want:
            continue
        action = Action.REMOVE if want is None else (Action.CREATE if have is None else Action.UPDATE)
        changes.append(Change(rid, action, f"{action} {path}", unified_diff(path, have, want or b"")))
    live_hash = hashlib.sha256(b"".join(w or b"-" for w in wanted.values())).hexdigest()
    swap = (CaddySwap(wanted, current), Record.of(caddy_hash=live_hash))
    if changes:
        ctx.host.caddy_validate({p: wanted[p] for p in wanted}, ctx.paths)  # before anything on the host changes
        changes[-1].then(*swap)
    elif ctx.state.caddy_hash != live_hash:
        changes.append(Change(rid, Action.RELOAD, "reload Caddy (the live config may predate the snippet)", ops=swap))
    return Step(rid, changes, f"{ctx.url}")


def _write_all(ctx: Context, files: dict) -> None:
    host = ctx.host
    host.ensure_dir(ctx.paths.caddy_staging, mode=0o700)
    for path, content in files.items():
        if content is None:
            host.remove_file(path)
        else:
            host.ensure_dir(path.parent, mode=0o755)
            host.write_file(path, content, mode=0o644, tmp_dir=ctx.paths.caddy_staging)


def swap_and_reload(ctx: Context, wanted: dict, previous: dict) -> None:
    _write_all(ctx, wanted)
    try:
        ctx.host.caddy_reload(ctx.paths)
    except RipdepError as e:
        _write_all(ctx, previous)
        try:
            ctx.host.caddy_reload(ctx.paths)
            e.message += "; the previous snippet was restored and Caddy reloaded with it"
        except RipdepError:
            e.message += "; restoring the previous snippet did not reload either: check `journalctl -u caddy`"
        raise
