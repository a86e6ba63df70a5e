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
# The one database an app role may reach besides its own (pg_hba, ripdep init): backups are verified
# and restores staged in it, restored by the app's own role. App names cannot contain "_", so it is
# never an app's database; one at a time (lock.scratch_lock).
SCRATCH_DB = "ripdep_scratch"


@dataclass(frozen=True)
class RoleState:
    name: str
    can_login: bool
    superuser: bool
    createdb: bool
    createrole: bool
    in_apps_group: bool
    comment: str | None
    replication: bool = False
    bypassrls: bool = False
    other_groups: tuple[str, ...] = ()  # memberships besides ripdep_apps: never granted by ripdep

    def drift(self) -> list[str]:
        """What differs from how ripdep creates the role (LOGIN, in ripdep_apps, nothing more)."""
        gained = [attr for attr, on in (("SUPERUSER", self.superuser), ("CREATEDB", self.createdb),
                                        ("CREATEROLE", self.createrole), ("REPLICATION", self.replication),
                                        ("BYPASSRLS", self.bypassrls)) if on]
        gained += [f"member of {g}" for g in self.other_groups]
        if not self.can_login:
            gained.append("NOLOGIN")
        if not self.in_apps_group:
            gained.append(f"not in {APPS_GROUP}")
        return gained


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


def run_as(user: str, argv: list[str], *, stdin=None, stdout=None, timeout: float = 3600):
    """A tool as a Unix user — a PostgreSQL client (peer auth makes it that user's role), or tar on
    an app's state dir — with files opened by root passed as stdin/stdout, so the tool never reads
    ripdep's root-only folders itself. Run from / (a tool started in root's cwd complains it cannot
    change back to /root), with no supplementary groups: exactly the user's own privileges."""
    import subprocess

    return subprocess.run(argv, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                          stdout=stdout if stdout is not None else subprocess.PIPE, stderr=subprocess.PIPE,
                          user=user, group=user, extra_groups=[], cwd="/", timeout=timeout, env=PG_ENV)


def psql_rows(query: str, **variables: str) -> list[list[str | None]]:
    import subprocess

    argv = [pg_tool("psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-F", SEP, "-R", REC, "-P", f"null={NULL}",
            "-h", SOCKET_DIR, "-U", "postgres", "-d", "postgres"]
    for key, value in variables.items():
        argv += ["-v", f"{key}={value}"]
    proc = subprocess.run(argv, input=query, capture_output=True, text=True, user="postgres", timeout=30,
                          cwd="/", env=PG_ENV)
    if proc.returncode != 0:
        raise PreconditionFailed(f"cannot query PostgreSQL as postgres over {SOCKET_DIR}: {proc.stderr.strip()}",
                                 hint="is it running? systemctl status postgresql")
    return [[None if v == NULL else v for v in line.split(SEP)] for line in proc.stdout.rstrip("\n").split(REC) if line]


def psql_script(statements: tuple[str, ...], variables: tuple[tuple[str, str], ...], *,
                transaction: bool) -> None:
    """Statements written with psql variables (:"name" an identifier, :'name' a literal, quoted by
    psql itself) run by one psql process: ~15 ms where importing psycopg and connecting costs
    ~120 ms. transaction: all in one (psql -1); otherwise each on its own, stopping at the first
    error (CREATE DATABASE cannot run inside a transaction)."""
    import subprocess

    from ripdep.errors import ApplyFailed

    argv = [pg_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", SOCKET_DIR, "-U", "postgres", "-d", "postgres"]
    argv += ["-1", "-f", "-"] if transaction else ["-f", "-"]
    for key, value in variables:
        argv += ["-v", f"{key}={value}"]
    proc = subprocess.run(argv, input="".join(f"{s};\n" for s in statements), capture_output=True, text=True,
                          user="postgres", timeout=60, cwd="/", env=PG_ENV)
    if proc.returncode != 0:
        raise ApplyFailed(f"PostgreSQL refused: {proc.stderr.strip()}", details=list(statements))


# name, login, super, createdb, createrole, in ripdep_apps, comment, replication, bypassrls, and the
# roles it is a member of besides ripdep_apps (comma-separated, '' when none)
ROLE_COLUMNS = """r.rolname::text, r.rolcanlogin::text, r.rolsuper::text, r.rolcreatedb::text, r.rolcreaterole::text,
       EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
               WHERE m.member = r.oid AND g.rolname = :'group')::text,
       shobj_description(r.oid, 'pg_authid'), r.rolreplication::text, r.rolbypassrls::text,
       coalesce((SELECT string_agg(g.rolname::text, ',' ORDER BY g.rolname) FROM pg_auth_members m
                 JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid AND g.rolname <> :'group'), '')"""


def role_from_row(row: list) -> RoleState:
    flag = [v == "true" for v in row]
    return RoleState(row[0], flag[1], flag[2], flag[3], flag[4], flag[5], row[6], flag[7], flag[8],
                     tuple(g for g in (row[9] or "").split(",") if g))


def read_roles(names: list[str]) -> dict[str, RoleState]:
    """Several app roles in one psql call (status flags any that drifted)."""
    if not names:
        return {}
    query = f"SELECT {ROLE_COLUMNS} FROM pg_roles r WHERE r.rolname = ANY (string_to_array(:'names', ','))"
    return {str(row[0]): role_from_row(row) for row in psql_rows(query, names=",".join(names), group=APPS_GROUP)}


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
        query = f"""SELECT 'role', {ROLE_COLUMNS} FROM pg_roles r WHERE r.rolname = :'app'
           UNION ALL
           SELECT 'database', d.datname::text, pg_get_userbyid(d.datdba)::text, shobj_description(d.oid, 'pg_database'),
                  has_database_privilege('public', d.oid, 'CONNECT')::text, d.datcollate::text, NULL, NULL,
                  NULL, NULL, NULL
           FROM pg_database d WHERE d.datname = :'app';"""
        role = database = None
        for row in psql_rows(query, app=name, group=APPS_GROUP):
            if row[0] == "role":
                role = role_from_row(row[1:])
            else:
                database = DatabaseState(str(row[1]), str(row[2]), row[3], row[4] == "true", row[5])
        return role, database

    def reload_config(self) -> None:
        self.execute("SELECT pg_reload_conf()")

    def hba_errors(self) -> list[str]:
        rows = self.execute("SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL")
        return [f"line {n}: {e}" for n, e in rows]

    def server_version(self) -> str:
        return self.execute("SHOW server_version")[0][0]

    def drop_database(self, name: str) -> None:
        from psycopg import sql

        self.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def create_scratch_database(self, owner: str, locale: str | None) -> None:
        """SCRATCH_DB, empty, owned by the app's role (so that role can restore into it) and reachable
        by no other app role (CONNECT revoked from PUBLIC; pg_hba admits app roles only by peer)."""
        from psycopg import sql

        from ripdep.resources.database import create_database_sql

        db = sql.Identifier(SCRATCH_DB)
        self.drop_database(SCRATCH_DB)
        # closed to connections until CONNECT is the owner's alone: every app role passes pg_hba here,
        # and PUBLIC may connect to a new database until the REVOKE
        self.execute(sql.SQL("{} ALLOW_CONNECTIONS false").format(
            create_database_sql(SCRATCH_DB, owner, locale, template0=True)))
        self.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(db))
        self.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(db, sql.Identifier(owner)))
        self.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(db))

    def rename_database(self, old: str, new: str) -> None:
        from psycopg import sql

        self.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (old,))
        self.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(old), sql.Identifier(new)))


def locale_known(locale: str) -> bool:
    """Whether the cluster can create a database with this LOCALE: C/POSIX, or a libc locale initdb
    imported into pg_collation (what `locale -a` listed when the cluster was created)."""
    if locale in ("C", "POSIX"):
        return True
    return bool(psql_rows("SELECT 1 FROM pg_collation WHERE collprovider = 'c' AND "
                          "(collcollate = :'loc' OR collname = :'loc') LIMIT 1", loc=locale))
