"""role:NAME and database:NAME — the app's PostgreSQL role (member of ripdep_apps, LOGIN, nothing
more) and its database, owned by that role, with CONNECT revoked from PUBLIC. Both marked with a
COMMENT; a role or database without ripdep's marker is never adopted."""

from __future__ import annotations

from ripdep.context import Context
from ripdep.errors import Conflict
from ripdep.host.postgres import APPS_GROUP, DatabaseState, RoleState
from ripdep.resources import Change, Step


def marker(app: str) -> str:
    return f"managed by ripdep: app {app}"


def diff_role(app: str, current: RoleState | None) -> list[Change]:
    rid = f"role:{app}"
    if current is None:
        return [Change(rid, "create", f"create role {app} in {APPS_GROUP}")]
    if current.comment != marker(app):
        raise Conflict(f"PostgreSQL role {app!r} exists and was not created by ripdep",
                       hint="pick another app name; ripdep never adopts roles it did not create")
    if not current.can_login or current.superuser or current.createdb or current.createrole or not current.in_apps_group:
        return [Change(rid, "fix", f"reset role {app} to LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE in {APPS_GROUP}")]
    return []


def diff_database(app: str, current: DatabaseState | None) -> list[Change]:
    rid = f"database:{app}"
    if current is None:
        return [Change(rid, "create", f"create database {app} owned by {app}")]
    if current.comment != marker(app):
        # a crash between CREATE DATABASE and COMMENT leaves our database unmarked; only ripdep's
        # marked role of the same name could own it (app roles cannot create databases)
        if current.owner != app:
            raise Conflict(f"database {app!r} exists and was not created by ripdep",
                           hint="pick another app name; ripdep never adopts databases it did not create")
        return [Change(rid, "fix", f"mark database {app} as ripdep's (left unmarked by an interrupted run)")]
    if current.owner != app or current.public_can_connect:
        return [Change(rid, "fix", f"set owner of database {app} to {app} and revoke CONNECT from PUBLIC")]
    return []


def _role_sql(app: str, create: bool):
    from psycopg import sql

    role = sql.Identifier(app)
    attrs = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
    verb = "CREATE" if create else "ALTER"
    return [
        sql.SQL(f"{verb} ROLE {{}} {attrs}").format(role),
        sql.SQL("GRANT {} TO {}").format(sql.Identifier(APPS_GROUP), role),
        sql.SQL("COMMENT ON ROLE {} IS {}").format(role, sql.Literal(marker(app))),
    ]


def _database_sql(app: str, create: bool):
    from psycopg import sql

    db = sql.Identifier(app)
    first = [sql.SQL("CREATE DATABASE {} OWNER {}").format(db, db)] if create else \
        [sql.SQL("ALTER DATABASE {} OWNER TO {}").format(db, db)]
    return first + [
        sql.SQL("COMMENT ON DATABASE {} IS {}").format(db, sql.Literal(marker(app))),
        sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(db),
        sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(db, db),
    ]


def plan(ctx: Context) -> list[Step]:
    if not ctx.spec.database:
        return []
    app, pg = ctx.app, ctx.pg
    role, db = pg.read_app(app)
    role_changes = diff_role(app, role)
    for c in role_changes:
        statements = _role_sql(app, c.action == "create")

        def run_role(statements=statements):
            # one transaction: the role never exists without its marker
            with pg.conn.transaction():
                for s in statements:
                    pg.execute(s)
        c.run = run_role
    db_changes = diff_database(app, db)
    for c in db_changes:
        statements = _database_sql(app, c.action == "create")
        # CREATE DATABASE cannot run in a transaction: the marker follows at once, and diff_database
        # recognises an unmarked database owned by our role after a crash in between
        c.run = lambda statements=statements: [pg.execute(s) for s in statements]
    return [Step(f"role:{app}", role_changes), Step(f"database:{app}", db_changes)]
