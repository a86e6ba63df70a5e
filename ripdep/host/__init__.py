"""The thin seam to the host: every subprocess, file write, D-Bus call and SQL query lives here.

Functions are small typed wrappers without policy; deciding what to do is the planner's job.
`Host` bundles the ones the engine uses into one object that a run receives (`ctx.host`), so the
engine can run against tests/unit/fakehost.py. Submodules are imported on first use: a command
that never talks to systemd or PostgreSQL does not pay for pystemd or psycopg.
"""

from __future__ import annotations

from pathlib import Path


class Host:
    """The real machine. One instance per run; `close()` ends its D-Bus and PostgreSQL sessions."""

    def __init__(self) -> None:
        self._bus = None
        self._pg = None

    # --- files ---------------------------------------------------------------------------------
    def read_file(self, path: Path):
        from ripdep.host import fs

        return fs.read_file(path)

    def write_file(self, path: Path, content: bytes, *, mode: int, uid: int = 0, gid: int = 0,
                   tmp_dir: Path | None = None) -> None:
        from ripdep.host import fs

        fs.write_file(path, content, mode=mode, uid=uid, gid=gid, tmp_dir=tmp_dir)

    def remove_file(self, path: Path) -> bool:
        from ripdep.host import fs

        return fs.remove_file(path)

    def ensure_dir(self, path: Path, *, mode: int, uid: int = 0, gid: int = 0) -> bool:
        from ripdep.host import fs

        return fs.ensure_dir(path, mode=mode, uid=uid, gid=gid)

    def dir_mode(self, path: Path) -> tuple[int, int, int] | None:
        """(mode, uid, gid) of a folder, None if there is none (a link is not a folder)."""
        import os
        import stat

        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        return (st.st_mode & 0o7777, st.st_uid, st.st_gid) if stat.S_ISDIR(st.st_mode) else None

    def remove_tree(self, path: Path) -> None:
        import shutil

        shutil.rmtree(path, ignore_errors=True)  # rmtree unlinks symlinks, never follows them

    def symlink(self, link: Path, target: Path) -> None:
        from ripdep.host import fs

        fs.symlink(link, target)

    def list_dir(self, path: Path) -> list[str] | None:
        """The names in a folder, None if there is no folder."""
        import os

        try:
            return os.listdir(path)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def is_link(self, path: Path) -> bool:
        import os

        return os.path.islink(path)

    # --- users ---------------------------------------------------------------------------------
    def read_user(self, name: str):
        from ripdep.host import users

        return users.read_user(name)

    def group_exists(self, name: str) -> bool:
        from ripdep.host import users

        return users.group_exists(name)

    def create_user(self, name: str, *, gecos: str, home: str) -> None:
        from ripdep.host import users

        users.create_system_user(name, gecos=gecos, home=home)

    def modify_user(self, name: str, *, gecos: str, home: str) -> None:
        from ripdep.host import users

        users.modify_user(name, gecos=gecos, home=home)

    def delete_user(self, name: str) -> None:
        from ripdep.host import users

        users.delete_user(name)

    # --- systemd -------------------------------------------------------------------------------
    @property
    def bus(self):
        if self._bus is None:
            from ripdep.host.systemd import Bus

            self._bus = Bus()
        return self._bus

    def read_unit(self, name: str, *, with_file_state: bool = True):
        return self.bus.read_unit(name, with_file_state=with_file_state)

    def active_state(self, name: str) -> str:
        return self.bus.active_state(name)

    def systemctl(self, *args: str, quiet: bool = False) -> None:
        """quiet: "already so" is fine (stopping a stopped unit, resetting an unloaded one)."""
        from ripdep.host import systemd

        (systemd.run_systemctl_quiet if quiet else systemd.systemctl)(*args)

    def verify_unit(self, name: str, text: str) -> tuple[list[str], float | None]:
        """systemd-analyze verify's complaints about a candidate unit, and its exposure score."""
        import tempfile

        from ripdep.host import systemd

        with tempfile.TemporaryDirectory(prefix="ripdep-verify.") as tmp:
            path = Path(tmp) / name
            path.write_text(text)
            return systemd.verify_and_score(str(path))

    def journal_tail(self, unit: str, lines: int = 20) -> list[str]:
        from ripdep.host import systemd

        return systemd.journal_tail(unit, lines)

    # --- PostgreSQL ----------------------------------------------------------------------------
    @property
    def pg(self):
        if self._pg is None:
            from ripdep.host.postgres import Postgres

            self._pg = Postgres()
        return self._pg

    def read_app_db(self, name: str):
        return self.pg.read_app(name)

    def role_exists(self, name: str) -> bool:
        from ripdep.host.postgres import psql_rows

        return bool(psql_rows("SELECT 1 FROM pg_roles WHERE rolname = :'name'", name=name))

    def hba_file(self) -> Path:
        from ripdep.host.postgres import psql_rows

        return Path(str(psql_rows("SHOW hba_file")[0][0]))

    def write_hba(self, path: Path, content: bytes, previous) -> None:
        from ripdep.errors import ValidationFailed
        from ripdep.host import fs

        mode, uid, gid = previous.mode or 0o640, previous.uid or 0, previous.gid or 0
        fs.write_file(path, content, mode=mode, uid=uid, gid=gid)
        self.pg.reload_config()
        errors = self.pg.hba_errors()
        if errors:
            fs.write_file(path, previous.content or b"", mode=mode, uid=uid, gid=gid)
            self.pg.reload_config()
            raise ValidationFailed(f"{path} with ripdep's rules has errors; the previous file was restored",
                                   details=errors)

    def locale_known(self, locale: str) -> bool:
        from ripdep.host.postgres import locale_known

        return locale_known(locale)

    def sql(self, statements, *, transaction: bool, variables: tuple = ()) -> None:
        """psycopg.sql statements over the run's connection, or plain text with psql variables
        (Sql.variables) through one psql process, without importing psycopg."""
        if statements and all(isinstance(s, str) for s in statements):
            from ripdep.host.postgres import psql_script

            psql_script(tuple(statements), variables, transaction=transaction)
            return
        if transaction:
            with self.pg.conn.transaction():
                for s in statements:
                    self.pg.execute(s)
        else:
            for s in statements:
                self.pg.execute(s)

    # --- Caddy ---------------------------------------------------------------------------------
    def caddy_validate(self, overrides: dict, paths) -> None:
        from ripdep.host import caddy

        caddy.validate(overrides, paths)

    def caddy_reload(self, paths) -> None:
        from ripdep.host import caddy

        caddy.reload(paths)

    # --- code, network, health -----------------------------------------------------------------
    def is_dir(self, path: Path) -> bool:
        return path.is_dir()

    def scan_source(self, source: Path, index: Path):
        """The source's content digest (releases.Scan), hashing only files changed since `index`."""
        import json

        from ripdep.releases import scan

        try:
            previous = json.loads(index.read_text())
        except (FileNotFoundError, ValueError):
            previous = {}
        return scan(source, previous if isinstance(previous, dict) else {})

    def read_link(self, path: Path) -> str | None:
        import os

        try:
            return os.readlink(path)
        except (FileNotFoundError, OSError):
            return None

    def install_tree(self, paths, app: str, tree: str, source: Path, scan, link_from: str | None) -> None:
        from ripdep.releases import install_tree

        install_tree(paths, app, tree, source, scan, link_from)

    def switch_code(self, paths, app: str, tree: str) -> None:
        from ripdep.releases import switch

        switch(paths, app, tree)

    def remove_trees(self, paths, app: str, trees: list[str]) -> None:
        from ripdep.releases import remove_trees

        remove_trees(paths, app, trees)

    def listeners(self, pid: int | None = None) -> list[tuple[int, int]]:
        """(port, uid) of listening TCP sockets: the host's, or those in process pid's namespace."""
        from ripdep.resources.port import listeners

        return listeners(pid)

    def probe(self, url: str, target, path: str, host_header: str | None, deadline: float, gave_up, check=None):
        from ripdep.host import http

        return http.probe(url, target, path, host_header, deadline, gave_up, check)

    def check_calendar(self, expr: str) -> list[str]:
        """systemd-analyze calendar's complaints about an OnCalendar= expression ([] = valid)."""
        from ripdep.host.proc import run

        result = run(["systemd-analyze", "calendar", expr], check=False)
        return result.stderr.strip().splitlines()[-3:] or ["invalid"] if result.returncode else []

    # --- ripdep's own records: state, secrets store, locks -------------------------------------
    def read_state(self, app: str, paths):
        from ripdep.state import read_state

        return read_state(app, paths)

    def write_state(self, state, paths) -> None:
        from ripdep.state import write_state

        write_state(state, paths)

    def all_states(self, paths) -> list:
        from ripdep.state import all_states

        return all_states(paths)

    def read_store(self, folder: Path) -> dict:
        from ripdep.secret import read_store

        return read_store(folder)

    def write_secret(self, folder: Path, key: str, value) -> None:
        from ripdep.secret import write_secret

        write_secret(folder, key, value)

    def app_lock(self, app: str, paths, wait: float = 0):
        from ripdep.lock import app_lock

        return app_lock(app, paths, wait=wait)

    def host_lock(self, paths):
        from ripdep.lock import host_lock

        return host_lock(paths)

    def reserved_ports(self, paths) -> set[int]:
        from ripdep.lock import reserved_ports

        return reserved_ports(paths)

    def reserve_port(self, paths, port: int) -> None:
        from ripdep.lock import reserve_port

        reserve_port(paths, port)

    # --- preconditions -------------------------------------------------------------------------
    def require_root(self) -> None:
        import os

        from ripdep.errors import PreconditionFailed

        if os.geteuid() != 0:
            raise PreconditionFailed("ripdep must run as root", hint="use sudo ripdep ...")

    def require_systemd(self) -> None:
        from ripdep.host.systemd import require_systemd

        require_systemd()

    def close(self) -> None:
        for handle in (self._bus, self._pg):
            if handle is not None:
                handle.close()
        self._bus = self._pg = None
