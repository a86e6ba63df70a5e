"""role:NAME and database:NAME — the app's PostgreSQL role (member of ripdep_apps, LOGIN, nothing
more) and its database, owned by that role, with CONNECT revoked from PUBLIC. Both marked with a
COMMENT; a role or database without ripdep's marker is never adopted."""

from __future__ import annotations

from ripdep.context import Context
from ripdep.errors import BadInput, Conflict, PreconditionFailed
from ripdep.host.postgres import APPS_GROUP, DatabaseState, RoleState
from ripdep.resources import Action, Change, Sql, Step


def marker(app: str) -> str:
    return f"managed by ripdep: app {app}"


def diff_role(app: str, current: RoleState | None) -> list[Change]:
    rid = f"role:{app}"
    if current is None:
        return [Change(rid, Action.CREATE, f"create role {app} in {APPS_GROUP}")]
    if current.comment != marker(app):
        raise Conflict(f"PostgreSQL role {app!r} exists and was not created by ripdep",
                       hint="pick another app name; ripdep never adopts roles it did not create")
    drift = current.drift()
    if drift:
        return [Change(rid, Action.FIX, f"reset role {app} to LOGIN in {APPS_GROUP} and nothing more "
                                   f"(it had: {', '.join(drift)})")]
    return []


def diff_database(app: str, current: DatabaseState | None, locale: str | None = None) -> list[Change]:
    rid = f"database:{app}"
    if current is None:
        where = f" with locale {locale}" if locale else ""
        return [Change(rid, Action.CREATE, f"create database {app} owned by {app}{where}")]
    if locale and current.collate and current.collate != locale:
        raise PreconditionFailed(
            f"database {app} has locale {current.collate}, the manifest asks for {locale}; "
            "a database's locale cannot be changed in place",
            hint=f"ripdep backup {app}; ripdep destroy {app} --yes; deploy again; ripdep restore {app} BACKUP --yes")
    if current.comment != marker(app):
        # a crash between CREATE DATABASE and COMMENT leaves our database unmarked; only ripdep's
        # marked role of the same name could own it (app roles cannot create databases)
        if current.owner != app:
            raise Conflict(f"database {app!r} exists and was not created by ripdep",
                           hint="pick another app name; ripdep never adopts databases it did not create")
        return [Change(rid, Action.FIX, f"mark database {app} as ripdep's (left unmarked by an interrupted run)")]
    if current.owner != app or current.public_can_connect:
        return [Change(rid, Action.FIX, f"set owner of database {app} to {app} and revoke CONNECT from PUBLIC")]
    return []


def _role_sql(app: str, create: bool, other_groups: tuple[str, ...] = ()) -> Sql:
    """Text for one psql process, values as psql variables (quoted by psql): a deploy that creates
    the role does not import psycopg (~120 ms with its connection)."""
    attrs = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
    verb = "CREATE" if create else "ALTER"
    statements = (f'{verb} ROLE :"app" {attrs}', 'GRANT :"apps_group" TO :"app"',
                  *(f'REVOKE :"group{i}" FROM :"app"' for i in range(len(other_groups))),
                  "COMMENT ON ROLE :\"app\" IS :'marker'")
    variables = (("app", app), ("apps_group", APPS_GROUP), *((f"group{i}", g) for i, g in enumerate(other_groups)),
                 ("marker", marker(app)))
    return Sql(statements, transaction=True, variables=variables)  # the role never exists without its marker


def create_database_sql(name: str, owner: str, locale: str | None, template0: bool = False):
    """CREATE DATABASE; from template0 with the app's locale when it has one (apps that insist on
    collation C, on a cluster whose default is C.UTF-8), and for restores (nothing pre-made)."""
    from psycopg import sql

    statement = sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner))
    if locale or template0:
        statement = sql.SQL("{} TEMPLATE template0").format(statement)
    if locale:
        statement = sql.SQL("{} LOCALE {}").format(statement, sql.Literal(locale))
    return statement


def _database_sql(app: str, create: bool, locale: str | None = None):
    from psycopg import sql

    db = sql.Identifier(app)
    first = [create_database_sql(app, app, locale)] if create else \
        [sql.SQL("ALTER DATABASE {} OWNER TO {}").format(db, db)]
    return first + [
        sql.SQL("COMMENT ON DATABASE {} IS {}").format(db, sql.Literal(marker(app))),
        sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(db),
        sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(db, db),
    ]


def _database_script(app: str, create: bool, locale: str | None = None) -> Sql:
    """What _database_sql does, as text for one psql process (see _role_sql)."""
    first = 'CREATE DATABASE :"app" OWNER :"app"' + (" TEMPLATE template0 LOCALE :'locale'" if locale else "") \
        if create else 'ALTER DATABASE :"app" OWNER TO :"app"'
    statements = (first, "COMMENT ON DATABASE :\"app\" IS :'marker'", 'REVOKE ALL ON DATABASE :"app" FROM PUBLIC',
                  'GRANT CONNECT, TEMPORARY ON DATABASE :"app" TO :"app"')
    variables = (("app", app), ("marker", marker(app)), *((("locale", locale),) if locale else ()))
    return Sql(statements, variables=variables)


def plan(ctx: Context) -> list[Step]:
    if not ctx.spec.database:
        return []
    app, host = ctx.app, ctx.host
    role, db = host.read_app_db(app)
    locale = ctx.spec.database_locale
    if locale and db is None and not host.locale_known(locale):
        raise BadInput(f"manifest key 'database_locale': PostgreSQL does not know locale {locale!r}",
                       hint="pick one of `locale -a` that the cluster imported (SELECT collcollate FROM pg_collation)")
    role_changes = diff_role(app, role)
    for c in role_changes:
        c.then(_role_sql(app, c.action == "create", role.other_groups if role else ()))
    db_changes = diff_database(app, db, locale)
    for c in db_changes:
        # CREATE DATABASE cannot run in a transaction: the marker follows at once, and diff_database
        # recognises an unmarked database owned by our role after a crash in between
        c.then(_database_script(app, c.action == "create", locale))
    return [Step(f"role:{app}", role_changes), Step(f"database:{app}", db_changes)]
