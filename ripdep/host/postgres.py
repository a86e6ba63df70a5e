"""PostgreSQL administration as the `postgres` superuser, reached by peer auth over the local socket.

Root has no role of its own: the connection is opened with the effective uid switched to postgres
for the duration of connect() (peer auth reads the peer's credentials at connect time), so no
password and no pg_ident change are needed. Identifiers go through psycopg.sql, never f-strings.
"""

from __future__ import annotations

import os
import pwd
from contextlib import contextmanager
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

    def read_role(self, name: str) -> RoleState | None:
        rows = self.execute(
            """SELECT r.rolname, r.rolcanlogin, r.rolsuper, r.rolcreatedb, r.rolcreaterole,
                      EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                              WHERE m.member = r.oid AND g.rolname = %s),
                      shobj_description(r.oid, 'pg_authid')
               FROM pg_roles r WHERE r.rolname = %s""",
            (APPS_GROUP, name),
        )
        return RoleState(*rows[0]) if rows else None

    def read_database(self, name: str) -> DatabaseState | None:
        rows = self.execute(
            """SELECT d.datname, pg_get_userbyid(d.datdba), shobj_description(d.oid, 'pg_database'),
                      has_database_privilege('public', d.oid, 'CONNECT')
               FROM pg_database d WHERE d.datname = %s""",
            (name,),
        )
        return DatabaseState(*rows[0]) if rows else None

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
