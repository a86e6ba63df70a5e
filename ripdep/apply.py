"""The one dispatcher: carries out a planned change's ops against the run's host. Planning decides
everything; this only does it, in order (a crash between two ops converges on the rerun)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ripdep.host import Host
from ripdep.paths import Paths
from ripdep.resources import (CaddySwap, Change, Claim, CreateUser, DeleteUser, EnsureDir, InstallCode, InstallTree,
                              LiveRecord, ModifyUser, PgHba, Record, ReleasePhase, RemoveFile, RemoveTree, RemoveTrees, Sql,
                              SwitchCode, Symlink, Systemctl, WriteFile, WriteSecret)


class Target(Protocol):
    """What the ops act on: an app's Context, or the host itself (HostScope, for `ripdep init`)."""

    host: Host
    paths: Paths

    def record(self, **changes) -> None: ...


@dataclass
class HostScope:
    host: Host
    paths: Paths

    def record(self, **changes) -> None:
        raise TypeError("host-wide changes have no app record")


def apply_op(op, ctx) -> None:
    host = ctx.host
    match op:
        case EnsureDir():
            host.ensure_dir(op.path, mode=op.mode)
        case PgHba():
            host.write_hba(op.path, op.content, op.previous)
        case WriteFile():
            for folder, mode in op.dirs:
                host.ensure_dir(folder, mode=mode)
            gid = host.read_user(op.group).gid if op.group else op.gid
            host.write_file(op.path, op.content, mode=op.mode, uid=op.uid, gid=gid, tmp_dir=op.tmp_dir)
        case RemoveFile():
            host.remove_file(op.path)
        case RemoveTree():
            host.remove_tree(op.path)
        case Symlink():
            host.symlink(op.link, op.target)
        case Systemctl():
            host.systemctl(*op.args, quiet=op.quiet)
        case Sql():
            host.sql(op.statements, transaction=op.transaction, variables=op.variables)
        case CreateUser():
            host.create_user(op.name, gecos=op.gecos, home=op.home)
        case ModifyUser():
            host.modify_user(op.name, gecos=op.gecos, home=op.home)
        case DeleteUser():
            host.delete_user(op.name)
        case InstallCode():
            host.install_code(ctx.paths, op.app, op.source, op.digest)
        case InstallTree():
            host.install_tree(ctx.paths, op.app, op.tree, op.source, op.scan, op.link_from)
        case SwitchCode():
            host.switch_code(ctx.paths, op.app, op.tree)
        case LiveRecord():
            from dataclasses import replace

            from ripdep.releases import write_record

            write_record(host, ctx.paths, ctx.app, replace(ctx.pending, outcome="live"))
        case RemoveTrees():
            host.remove_trees(ctx.paths, op.app, list(op.trees))
        case ReleasePhase():
            from ripdep.release_phase import run_release_phase

            run_release_phase(ctx, op.release)
        case WriteSecret():
            host.write_secret(op.folder, op.key, op.value)
        case Record():
            ctx.record(**dict(op.fields))
        case Claim():
            from ripdep.resources.route import refuse_taken

            with host.host_lock(ctx.paths):
                refuse_taken(ctx, op.key)
                ctx.record(route=op.key)
        case CaddySwap():
            from ripdep.resources.route import swap_and_reload

            swap_and_reload(ctx, op.wanted, op.previous)
        case _:
            raise TypeError(f"not an op: {op!r}")


def apply_change(change: Change, ctx: Target) -> None:
    for op in change.ops:
        apply_op(op, ctx)
