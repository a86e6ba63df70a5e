"""PostgreSQL administration as the `postgres` superuser, reached by peer auth over the local socket.

Root has no role of its own: the connection is opened with the effective uid switched to postgres
for the duration of connect() (peer auth reads the peer's credentials at connect time), so no
password and no pg_ident change are needed. Identifiers go through psycopg.sql, never f-strings.
"""

from __future__ import annotations

import glob
import os
import pwd
from dataclasses import dataclass

from ripdep.errors import PreconditionFailed

SOCKET_DIR = "/run/postgresql"
APPS_GROUP = "ripdep_apps"


@dataclass(frozen=True)
class RoleState:
    name: str
    can_login: bool
    superuser: bool
    createdb: bool
    createrole: bool
    in_apps_group: bool
    comment: str | None


@dataclass(frozen=True)
class DatabaseState:
    name: str
    owner: str
    comment: str | None
    public_can_connect: bool
    collate: str | None = None


def connect(dbname: str = "postgres"):
    import psycopg  # imported here: commands that never touch the database don't pay for it

    try:
        pg = pwd.getpwnam("postgres")
    except KeyError:
        raise PreconditionFailed("PostgreSQL is not installed (no 'postgres' user)",
                                 hint="apt-get install postgresql, or run sudo ./install.sh") from None
    euid, egid = os.geteuid(), os.getegid()
    os.setegid(pg.pw_gid)
    os.seteuid(pg.pw_uid)
    try:
        return psycopg.connect(host=SOCKET_DIR, dbname=dbname, user="postgres", autocommit=True,
                               connect_timeout=10, application_name="ripdep")
    except psycopg.OperationalError as e:
        raise PreconditionFailed(f"cannot connect to PostgreSQL as postgres over {SOCKET_DIR}: {e}".strip(),
                                 hint="is it running? systemctl status postgresql") from None
    finally:
        os.seteuid(euid)
        os.setegid(egid)


NULL = "\x1dNULL"  # psql prints this for SQL NULL
SEP = "\x1f"  # unit separator between fields
REC = "\x1e"  # record separator between rows: a foreign comment may hold newlines


def pg_tool(name: str = "psql") -> str:
    """The newest PostgreSQL client binary: the real one, not Debian's Perl wrapper in /usr/bin
    (which alone costs ~30 ms per call)."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise PreconditionFailed(f"{name} is not installed", hint="apt-get install postgresql-client")
    return found[-1]


PG_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


def run_as_postgres(argv: list[str], *, stdin=None, stdout=None, timeout: float = 3600):
    """A PostgreSQL client tool as the postgres user (peer auth), with files opened by root passed
    as stdin/stdout so the tool never needs to read ripdep's root-only folders itself."""
    import subprocess

    return subprocess.run(argv, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                          stdout=stdout if stdout is not None else subprocess.PIPE, stderr=subprocess.PIPE,
                          user="postgres", timeout=timeout, env=PG_ENV)


def psql_rows(query: str, **variables: str) -> list[list[str | None]]:
    import subprocess

    argv = [pg_tool("psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-F", SEP, "-R", REC, "-P", f"null={NULL}",
            "-h", SOCKET_DIR, "-U", "postgres", "-d", "postgres"]
    for key, value in variables.items():
        argv += ["-v", f"{key}={value}"]
    proc = subprocess.run(argv, input=query, capture_output=True, text=True, user="postgres", timeout=30,
                          env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    if proc.returncode != 0:
        raise PreconditionFailed(f"cannot query PostgreSQL as postgres over {SOCKET_DIR}: {proc.stderr.strip()}",
                                 hint="is it running? systemctl status postgresql")
    return [[None if v == NULL else v for v in line.split(SEP)] for line in proc.stdout.rstrip("\n").split(REC) if line]


class Postgres:
    """One admin connection for a whole run, opened on first use."""

    def __init__(self):
        self._conn = None

    @property
    def conn(self):
        if self._conn is None:
            self._conn = connect()
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def execute(self, query, params=None) -> list[tuple]:
        with self.conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall() if cur.description else []

    def read_app(self, name: str) -> tuple[RoleState | None, DatabaseState | None]:
        """The app's role and database in one query, through psql.

        This runs on every deploy, changed or not: psql answers in ~11 ms where importing psycopg
        and connecting costs ~120 ms, a third of a no-change run's budget. Values reach psql as
        variables (:'app' is quoted by psql itself), never spliced into the text.
        """
        query = """SELECT 'role', r.rolname::text, r.rolcanlogin::text, r.rolsuper::text, r.rolcreatedb::text,
                  r.rolcreaterole::text,
                  EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                          WHERE m.member = r.oid AND g.rolname = :'group')::text,
                  shobj_description(r.oid, 'pg_authid')
           FROM pg_roles r WHERE r.rolname = :'app'
           UNION ALL
           SELECT 'database', d.datname::text, pg_get_userbyid(d.datdba)::text, shobj_description(d.oid, 'pg_database'),
                  has_database_privilege('public', d.oid, 'CONNECT')::text, d.datcollate::text, NULL, NULL
           FROM pg_database d WHERE d.datname = :'app';"""
        role = database = None
        for row in psql_rows(query, app=name, group=APPS_GROUP):
            if row[0] == "role":
                role = RoleState(row[1], *(v == "true" for v in row[2:7]), row[7])
            else:
                database = DatabaseState(row[1], row[2], row[3], row[4] == "true", row[5])
        return role, database

    def hba_file(self) -> str:
        return self.execute("SHOW hba_file")[0][0]

    def reload_config(self) -> None:
        self.execute("SELECT pg_reload_conf()")

    def hba_errors(self) -> list[str]:
        rows = self.execute("SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL")
        return [f"line {n}: {e}" for n, e in rows]

    def ensure_group_role(self) -> bool:
        from psycopg import sql

        if self.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APPS_GROUP,)):
            return False
        self.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(APPS_GROUP)))
        self.execute(sql.SQL("COMMENT ON ROLE {} IS {}").format(
            sql.Identifier(APPS_GROUP), sql.Literal("managed by ripdep: group of all app roles")))
        return True

    def server_version(self) -> str:
        return self.execute("SHOW server_version")[0][0]

    def drop_database(self, name: str) -> None:
        from psycopg import sql

        self.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def create_scratch_database(self, name: str) -> None:
        from psycopg import sql

        self.drop_database(name)
        self.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))

    def drop_role(self, name: str) -> None:
        from psycopg import sql

        self.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
