"""Third-party servers with a manifest alone (issue 10), in the real systemd container: the port in
arguments and in a config file, a POST health check with an expected text, and failed deploys that
say why (and say it soon). The app is tests/fixtures/thirdparty/server.py, written to behave like
software nobody here wrote."""

import json
import zlib

import pytest

from conftest import App, ROOT

SOURCE = ROOT / "tests" / "fixtures" / "thirdparty"
GRAPHQL = """
[health]
path = "/graphql"
method = "POST"
body = '{"query": "{ __typename }"}'
headers = { "Content-Type" = "application/json" }
status = 200
contains = "__typename"
"""


def text(start: list[str], extra: str = "", top: str = "") -> str:
    argv = json.dumps(["/usr/bin/python3", "server.py", *start])
    return f'source = "{SOURCE}"\nstart = {argv}\n{top}\n[env]\nGREETING = "hi there"\n{extra}'


@pytest.fixture
def app(ct, request):
    """An app of the test's own (a name from the test's name), stopped afterwards: a crash-looping
    one must not keep restarting beside the next test."""
    made = App(ct, f"tp{zlib.crc32(request.node.name.encode()) % 100000}")
    yield made
    ct.sh(f"ripdep stop {made.name} >/dev/null 2>&1 || true")


def failure(doc: dict) -> str:
    return json.dumps(doc["errors"][0])


def test_port_and_host_in_the_arguments_with_a_post_health_check(ct, app):
    code, doc = app.deploy(text(["--port", "${PORT}", "--host", "${HOST}", "--literal", "$$PORT", "cost$5"], GRAPHQL))
    assert code == 0, doc
    answer = ct.curl(f"{app.url}graphql", "-X", "POST", "-H", "Content-Type: application/json",
                     "-d", '{"query": "{ __typename }"}')
    assert json.loads(answer.stdout) == {"data": {"__typename": "Query"}}
    port = doc["port"]
    argv = ct.get_json(f"{app.url}argv")["argv"]
    assert argv == ["--port", str(port), "--host", "127.0.0.1", "--literal", "$PORT", "cost$5"]
    # the command line systemd ran holds values, never a secret (none is allowed there)
    assert ct.run("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"{app.url}graphql").stdout == "405"


def test_the_port_from_a_rendered_config_file_root_owned_and_read_only_to_the_app(ct, app):
    files = '[files]\n"server.yaml" = "server.yaml.j2"\n'
    code, doc = app.deploy(text(["--config", "${CONFIG_DIRECTORY}/server.yaml"], GRAPHQL + files))
    assert code == 0, doc
    path = f"/etc/ripdep/files/{app.name}/server.yaml"
    conf = ct.get_json(f"{app.url}argv")["config"]
    assert conf["host"] == "127.0.0.1" and conf["greeting"] == "hi there"
    assert conf["database"] == f"postgresql:///{app.name}?host=/run/postgresql"
    assert ct.run("stat", "-c", "%a %U %G", path, check=True).stdout.split() == ["640", "root", app.name]
    # the app reads it and cannot change or replace it; another app's user cannot read it
    as_app = ["systemd-run", "--wait", "--pipe", "--quiet", f"--uid={app.name}", f"--gid={app.name}"]
    assert ct.run(*as_app, "/bin/cat", path).returncode == 0
    assert ct.run(*as_app, "/bin/sh", "-c", f"echo port: 1 >> {path}").returncode != 0
    assert ct.run(*as_app, "/bin/sh", "-c", f"rm -f {path}; test ! -e {path}").returncode != 0
    ct.run("useradd", "--system", "--no-create-home", "tp-other")
    assert ct.run("systemd-run", "--wait", "--pipe", "--quiet", "--uid=tp-other", "/bin/cat", path).returncode != 0
    # a changed value re-renders the file and restarts the app
    pid = app.main_pid()
    code, doc = app.deploy(text(["--config", "${CONFIG_DIRECTORY}/server.yaml"], GRAPHQL + files).replace(
        "hi there", "hello again"))
    assert code == 0, doc
    assert ct.get_json(f"{app.url}argv")["config"]["greeting"] == "hello again" and app.main_pid() != pid


def test_a_get_health_check_on_a_post_only_server_fails_at_once_naming_the_health_check(ct, app):
    code, doc = app.deploy(text(["--port", "${PORT}", "--host", "${HOST}"], top='health = "/graphql"'))
    assert code == 4, doc
    err = failure(doc)
    assert "HTTP 405" in err and "asks the wrong thing" in err and "[health]" in doc["errors"][0]["hint"]
    assert doc["health"]["attempts"] == 1
    # a failed deploy still says what it changed, where the app is, and the failing probe
    assert doc["changed"] is True and doc["actions"] and doc["port"]


def test_a_graphiql_page_that_answers_while_the_database_is_down_is_not_health(ct, app):
    code, doc = app.deploy(text(["--port", "${PORT}", "--host", "${HOST}"], GRAPHQL))
    assert code == 0, doc
    ct.run("systemctl", "stop", "postgresql", check=True)
    try:
        status = ct.run("ripdep", "status", app.name, "--json")
        row = json.loads(status.stdout)["data"]["apps"][0]
        assert row["health"] == "failing" and "__typename" in row["health_error"]
        assert ct.run("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"{app.url}graphiql").stdout == "200"
    finally:
        ct.run("systemctl", "start", "postgresql", check=True)


def test_a_server_that_ignores_port_is_diagnosed_without_waiting_for_the_timeout(ct, app):
    code, doc = app.deploy(text([], GRAPHQL))  # listens on 0.0.0.0:3000 in its own namespace
    assert code == 4, doc
    err = failure(doc)
    assert "listens on port 3000" in err and "ignores the PORT" in err and "${PORT}" in doc["errors"][0]["hint"]
    assert doc["health"]["seconds"] < 25  # health_timeout is 30: the wait ended when it was clear


def test_a_jit_server_under_the_strict_profile_is_diagnosed_and_jit_fixes_it(ct, app):
    start = ["--port", "${PORT}", "--host", "${HOST}", "--jit"]
    code, doc = app.deploy(text(start, GRAPHQL))
    assert code == 4, doc
    err = failure(doc)
    assert "write+execute memory" in err and 'profile = \\"jit\\"' in err + json.dumps(doc["errors"][0]["hint"])
    assert "restarted 2 times" in err  # the wait ended on the crash loop, not the 30 s deadline
    seen = [d for d in doc["errors"][0]["details"] if d.startswith("seen: ")]
    assert seen and "Builtins_JSEntry" not in seen[0]  # the cause, not a stack frame
    code, doc = app.deploy(text(start, GRAPHQL, top='profile = "jit"'))
    assert code == 0, doc


def test_a_server_that_refuses_the_collation_is_pointed_at_database_locale(ct, app):
    start = ["--port", "${PORT}", "--host", "${HOST}", "--need-c-collation"]
    code, doc = app.deploy(text(start, GRAPHQL))
    assert code == 4, doc
    assert "database_locale" in doc["errors"][0]["hint"] and "collation is" in failure(doc)


def test_a_start_program_that_cannot_run_is_named(ct, app):
    code, doc = app.deploy(text([], GRAPHQL).replace('"/usr/bin/python3", "server.py"', '"./server.yaml.j2"'))
    assert code in (4, 6), doc
    assert "start" in json.dumps(doc["errors"][0])
