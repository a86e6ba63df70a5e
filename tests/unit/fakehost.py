"""An in-memory host for engine tests: the same methods as ripdep.host.Host, backed by dicts.

It keeps just enough of systemd, PostgreSQL, Caddy and the file system to let the real planner and
dispatcher run end to end: what was written reads back, a started unit is active, SQL that ripdep
sends changes the roles and databases it reads. Every mutation is logged in `mutations`, so a test
can assert "nothing changed" exactly. Knobs (`verify_problems`, `score`, `caddy_error`, `drop_writes`,
`fail_at`, `root`) inject the failures the engine must handle.
"""

from __future__ import annotations

import re
from contextlib import nullcontext
import contextlib
from pathlib import Path

from ripdep.errors import PreconditionFailed, ValidationFailed
from ripdep.host.fs import FileState
from ripdep.host.http import Probe
from ripdep.host.postgres import APPS_GROUP, DatabaseState, RoleState
from ripdep.host.systemd import UnitState
from ripdep.host.users import NOLOGIN, UserState


def psql_text(statement: str, variables: dict[str, str]) -> str:
    """A statement written with psql variables, as psql sends it (:"x" an identifier, :'x' a literal)."""
    def sub(m):
        value = variables[m[2]]
        return '"' + value.replace('"', '""') + '"' if m[1] == '"' else "'" + value.replace("'", "''") + "'"
    return re.sub(r":([\"'])(\w+)\1", sub, statement)


class FakeHost:
    def __init__(self) -> None:
        self.files: dict[Path, FileState] = {}
        self.dirs: set[Path] = set()
        self.links: dict[Path, Path] = {}
        self.users: dict[str, UserState] = {}
        self.units: dict[str, str] = {}  # name -> active state
        self.need_reload = False
        self.roles: dict[str, dict] = {}
        self.dbs: dict[str, dict] = {}
        self.states: dict[str, object] = {}
        self.store: dict[tuple[Path, str], object] = {}
        self.reserved: set[int] = set()
        self.mutations: list[str] = []
        self.running = {"caddy.service", "postgresql.service"}
        # failure knobs
        self.verify_problems: list[str] = []
        self.score = 0.5
        self.caddy_error: str | None = None
        self.drop_writes: set[Path] = set()  # writes that silently do not take
        self.fail_at: int | None = None  # the Nth mutation raises OSError (a crash mid-apply)
        self.root = True
        self.healthy = True  # False: the app answers its health check with 502; or a function of this host
        self.journal: dict[str, list[str]] = {}  # unit -> its journal lines
        self.trees_built: list[str] = []

    def _mutate(self, what: str) -> None:
        if self.fail_at is not None and len(self.mutations) + 1 >= self.fail_at:
            self.fail_at = None
            raise OSError(5, f"injected failure at {what}")
        self.mutations.append(what)

    # files
    def read_file(self, path: Path) -> FileState:
        return self.files.get(path, FileState(None))

    def write_file(self, path: Path, content: bytes, *, mode: int, uid: int = 0, gid: int = 0, tmp_dir=None) -> None:
        self._mutate(f"write {path}")
        if path not in self.drop_writes:
            self.files[path] = FileState(content, mode, uid, gid)
            self.dirs.add(path.parent)

    def remove_file(self, path: Path) -> bool:
        if path.parent.name == "state" and path.stem in self.states:  # ripdep's record of an app
            self._mutate(f"remove {path}")
            del self.states[path.stem]
            return True
        existed = path in self.files or path in self.links
        if existed:
            self._mutate(f"remove {path}")
        self.files.pop(path, None)
        self.links.pop(path, None)
        return existed

    def remove_tree(self, path: Path) -> None:
        self._mutate(f"rmtree {path}")
        self.dirs = {d for d in self.dirs if not d.is_relative_to(path)}
        self.files = {f: c for f, c in self.files.items() if not f.is_relative_to(path)}
        self.store = {k: v for k, v in self.store.items() if not k[0].is_relative_to(path)}

    def ensure_dir(self, path: Path, *, mode: int, uid: int = 0, gid: int = 0) -> bool:
        if path in self.dirs:
            return False
        self._mutate(f"mkdir {path}")
        self.dirs.add(path)
        return True

    def symlink(self, link: Path, target: Path) -> None:
        self._mutate(f"symlink {link}")
        self.links[link] = target

    def is_link(self, path: Path) -> bool:
        return path in self.links

    def is_dir(self, path: Path) -> bool:
        return path in self.dirs or path.is_dir()  # sources are real folders the test made

    # users
    def read_user(self, name: str):
        return self.users.get(name)

    def group_exists(self, name: str) -> bool:
        return name in self.users

    def create_user(self, name: str, *, gecos: str, home: str) -> None:
        self._mutate(f"useradd {name}")
        uid = 900 + len(self.users)
        self.users[name] = UserState(name, uid, uid, gecos, home, NOLOGIN, name)

    def delete_user(self, name: str) -> None:
        self._mutate(f"userdel {name}")
        del self.users[name]

    def modify_user(self, name: str, *, gecos: str, home: str) -> None:
        self._mutate(f"usermod {name}")
        u = self.users[name]
        self.users[name] = UserState(name, u.uid, u.gid, gecos, home, NOLOGIN, name)

    # systemd
    def read_unit(self, name: str, *, with_file_state: bool = True) -> UnitState:
        if name in self.running:
            active = "active"
        else:
            active = self.units.get(name, "inactive")
        loaded = name in self.units or name in self.running
        return UnitState("loaded" if loaded else "not-found", active, "running" if active == "active" else "dead",
                         "", 0, 0, None, None, 0, self.need_reload)

    def active_state(self, name: str) -> str:
        return self.read_unit(name).active_state

    def systemctl(self, *args: str, quiet: bool = False) -> None:
        verb, names = args[0], args[1:]
        if verb == "reset-failed":
            return  # changes nothing a plan reads
        self._mutate(f"systemctl {' '.join(args)}")
        if verb == "daemon-reload":
            self.need_reload = False
        for name in names:
            # an app unit Wants= its socket, and the socket is PartOf= it
            socket = name.replace(".service", ".proxy.socket") if ".proxy." not in name else None
            if verb in ("start", "restart"):
                self.units[name] = "active"
                if socket:
                    self.units[socket] = "active"
            elif verb == "stop":
                self.units[name] = "inactive"
                if socket and socket in self.units:
                    self.units[socket] = "inactive"

    def verify_unit(self, name: str, text: str):
        return list(self.verify_problems), None if self.verify_problems else self.score

    def journal_tail(self, unit: str, lines: int = 20) -> list[str]:
        return self.journal.get(unit, [])[-lines:]

    def check_calendar(self, expr: str) -> list[str]:
        return [] if expr in ("daily", "hourly", "weekly") else [f"invalid calendar {expr}"]

    # PostgreSQL: the SQL ripdep sends, as text, changes what read_app_db returns
    def read_app_db(self, name: str):
        r, d = self.roles.get(name), self.dbs.get(name)
        role = RoleState(name, r["login"], r["super"], False, False, r["group"], r["comment"]) if r else None
        db = DatabaseState(name, d["owner"], d["comment"], d["public"], None) if d else None
        return role, db

    def locale_known(self, locale: str) -> bool:
        return locale in ("C", "C.UTF-8")

    def sql(self, statements, *, transaction: bool, variables: tuple = ()) -> None:
        texts = [psql_text(s, dict(variables)) if isinstance(s, str) else s.as_string(None) for s in statements]
        if transaction:  # all or nothing, as in PostgreSQL
            self._mutate(f"sql transaction {texts}")
        for text in texts:
            if not transaction:
                self._mutate(f"sql {text}")
            self._interpret(text)

    def _interpret(self, text: str) -> None:
        name = lambda: re.findall(r'"([^"]+)"', text)  # noqa: E731 - the quoted identifiers, in order
        if m := re.match(r'DROP (ROLE|DATABASE) IF EXISTS "([^"]+)"', text):
            (self.roles if m[1] == "ROLE" else self.dbs).pop(m[2], None)
        elif re.match(r"(CREATE|ALTER) ROLE ", text):
            role = self.roles.setdefault(name()[0], {"group": False, "comment": None})
            role.update(login=True, super=False)
        elif text.startswith("GRANT ") and " TO " in text and " ON " not in text:
            group, member = name()
            if group == APPS_GROUP:
                self.roles[member]["group"] = True
        elif m := re.match(r"COMMENT ON (ROLE|DATABASE) \"([^\"]+)\" IS '(.*)'$", text):
            (self.roles if m[1] == "ROLE" else self.dbs)[m[2]]["comment"] = m[3]
        elif text.startswith("CREATE DATABASE "):
            db, owner = name()[:2]
            self.dbs[db] = {"owner": owner, "comment": None, "public": True}
        elif m := re.match(r"REVOKE ALL ON DATABASE \"([^\"]+)\" FROM PUBLIC", text):
            self.dbs[m[1]]["public"] = False

    # Caddy
    def caddy_validate(self, overrides: dict, paths) -> None:
        if self.caddy_error:
            raise ValidationFailed(self.caddy_error)

    def caddy_reload(self, paths) -> None:
        self._mutate("caddy reload")

    # code, network, health
    # releases: the source is a real folder the test made; trees and the code link are in memory
    def scan_source(self, source: Path, index: Path):
        from ripdep.releases import scan

        return scan(source, {})

    def read_link(self, path: Path) -> str | None:
        target = self.links.get(path)
        return None if target is None else str(target)

    def install_tree(self, paths, app: str, tree: str, source: Path, scan, link_from) -> None:
        self._mutate(f"install tree {app}/{tree}")
        self.dirs.add(paths.releases_root(app) / tree)
        self.trees_built.append(tree)

    def switch_code(self, paths, app: str, tree: str) -> None:
        self._mutate(f"switch {app} to {tree}")
        self.links[paths.code(app)] = Path(f"{paths.releases_root(app).name}/{tree}")

    def remove_trees(self, paths, app: str, trees: list[str]) -> None:
        for tree in trees:
            self._mutate(f"remove tree {app}/{tree}")
            self.dirs.discard(paths.releases_root(app) / tree)

    def list_dir(self, path: Path) -> list[str] | None:
        return [p.name for p in self.files if p.parent == path] if path in self.dirs else None

    def listeners(self, pid: int | None = None) -> list[tuple[int, int]]:
        return []

    def probe(self, url, target, path, host_header, deadline, gave_up, check=None) -> Probe:
        app_units = [u for u in self.units if u.startswith("ripdep-") and u.endswith(".service") and ".proxy" not in u]
        healthy = self.healthy(self) if callable(self.healthy) else self.healthy
        ok = healthy and any(self.units[u] == "active" for u in app_units)
        return Probe(url, ok=ok, status=200 if ok else 502, attempts=1)

    # ripdep's records
    def read_state(self, app: str, paths):
        return self.states.get(app)

    def write_state(self, state, paths) -> None:
        if self.states.get(state.app) != state:
            self._mutate(f"state {state.app}")
            self.states[state.app] = state

    def all_states(self, paths) -> list:
        return list(self.states.values())

    def read_store(self, folder: Path) -> dict:
        return {key: value for (f, key), value in self.store.items() if f == folder}

    def write_secret(self, folder: Path, key: str, value) -> None:
        self._mutate(f"secret {folder}/{key}")
        self.store[(folder, key)] = value

    def app_lock(self, app: str, paths, wait: float = 0):
        return nullcontext()

    def host_lock(self, paths):
        return nullcontext()

    def reserved_ports(self, paths) -> set[int]:
        return set(self.reserved)

    def reserve_port(self, paths, port: int) -> None:
        self.reserved.add(port)  # a flock in /run: not a change to the host a plan reads

    def require_root(self) -> None:
        if not self.root:
            raise PreconditionFailed("ripdep must run as root")

    def require_systemd(self) -> None:
        pass

    def close(self) -> None:
        pass


def fake_world(tmp_path: Path, app_py: str = "print('hello')\n"):
    """(paths, source): the host config on disk under tmp_path (no watch window after a release
    switch: the engine tests are not about that wait), and a source folder with app.py. Everything
    else is the FakeHost's."""
    from ripdep.hostconfig import DEFAULT_TEXT
    from ripdep.paths import Paths

    paths = Paths(tmp_path / "root")
    paths.host_config.parent.mkdir(parents=True)
    paths.host_config.write_text(DEFAULT_TEXT.replace("releases_watch = 10", "releases_watch = 0"))
    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    (source / "app.py").write_text(app_py)
    return paths, source


@contextlib.contextmanager
def rooted(root: Path):
    """PATHS (one frozen object, every function's default path set) re-rooted at `root` in place,
    and put back afterwards: for tests that run code which takes no paths argument."""
    from ripdep.paths import PATHS

    real = PATHS.root
    object.__setattr__(PATHS, "root", root)
    try:
        yield PATHS
    finally:
        object.__setattr__(PATHS, "root", real)
