"""Third-party apps with a manifest alone (issue 10): ${VAR} in start, [files] templates, the
[health] request, and the diagnosis of a failed deploy. Pure logic and the engine on a fake host."""

import os
import re
import socket
import threading
from pathlib import Path

import pytest

from fakehost import FakeHost, fake_world
from ripdep import engine, render
from ripdep.diagnose import diagnose
from ripdep.errors import BadInput
from ripdep.host import http
from ripdep.host.http import Probe
from ripdep.spec import Health, parse_manifest

MANIFEST = Path("/srv/src/hello/ripdep.toml")


def parse(**data):
    return parse_manifest("hello", {"source": ".", "start": ["/usr/bin/python3", "app.py"], **data}, MANIFEST)


def exec_start(spec) -> str:
    return next(line for line in render.render_unit(spec).splitlines() if line.startswith("ExecStart="))


# --- ${VAR} in start ------------------------------------------------------------------------

def test_variables_in_start_are_left_to_systemd_and_literal_dollars_stay_literal():
    spec = parse(start=["bin/server", "-p", "${PORT}", "--listen=${HOST}:${PORT}", "--db", "${DATABASE_URL}",
                        "--name", "${GREETING}", "cost$5", "$$PORT", "%h"], env={"GREETING": "hi"})
    line = exec_start(spec)
    assert '"-p" "${PORT}" "--listen=${HOST}:${PORT}" "--db" "${DATABASE_URL}" "--name" "${GREETING}"' in line
    assert '"cost$$5" "$$PORT" "%%h"' in line  # systemd turns $$ into $ and %% into %


@pytest.mark.parametrize("start, message", [
    (["bin/s", "${NOPE}"], r"\$\{NOPE\} is not a variable the app has"),
    (["bin/s", "${TOKEN}"], r"\$\{TOKEN\} is a secret"),
    (["bin/s", "$PORT"], r"write \$\{PORT\} \(with braces\)"),
    (["${STATE_DIRECTORY}/bin/s"], "the program .* cannot hold a variable"),
    (["bin/s", "${DATABASE_URL}"], r"\$\{DATABASE_URL\} is not a variable"),  # database = false
    (["bin/s", "${CREDENTIALS_DIRECTORY}"], r"\$\{CREDENTIALS_DIRECTORY\} is not a variable"),  # delivery = env
    (["bin/s", "${CONFIG_DIRECTORY}"], r"\$\{CONFIG_DIRECTORY\} is not a variable"),  # no [files]
    (["bin/s", "${}"], r"\$\{\} is not a variable"),
])
def test_start_variables_the_app_does_not_have_or_that_are_secret_are_refused(start, message):
    with pytest.raises(BadInput, match="manifest key 'start': " + message):
        parse(start=start, database=False, secrets={"TOKEN": "generate"})


def test_credentials_and_config_directories_are_known_when_the_app_has_them():
    spec = parse(start=["bin/s", "--creds", "${CREDENTIALS_DIRECTORY}", "-c", "${CONFIG_DIRECTORY}/app.yaml"],
                 secrets={"TOKEN": "generate"}, delivery="credentials", files={"app.yaml": "app.yaml.j2"})
    assert '"${CREDENTIALS_DIRECTORY}" "-c" "${CONFIG_DIRECTORY}/app.yaml"' in exec_start(spec)


@pytest.mark.parametrize("name", ["STATE_DIRECTORY", "CONFIG_DIRECTORY"])
def test_the_directories_ripdep_sets_cannot_be_overridden_by_env(name):
    with pytest.raises(BadInput, match=f"'{name}' is set by ripdep"):
        parse(env={name: "/tmp"})


# --- [health] --------------------------------------------------------------------------------

def test_a_health_table_gives_method_body_headers_status_and_text():
    spec = parse(health={"path": "/graphql", "method": "POST", "body": '{"query":"{__typename}"}',
                         "headers": {"Content-Type": "application/json"}, "status": 200, "contains": "__typename"})
    assert spec.health == Health("/graphql", "POST", '{"query":"{__typename}"}',
                                 (("Content-Type", "application/json"),), 200, "__typename")
    assert parse(health="/up").health == Health("/up")


@pytest.mark.parametrize("health, message", [
    ({"method": "BREW"}, "'health.method'"),
    ({"body": "x"}, "'health.body': a GET request has no body"),
    ({"headers": {"Host": "evil"}}, "'health.headers.Host': the health check sets Host itself"),
    ({"headers": {"X-A": "1\r\nX-B: 2"}}, "'health.headers.X-A'"),
    ({"headers": {"bad name": "1"}}, "'health.headers.bad name'"),
    ({"status": 99}, "'health.status'"),
    ({"path": "relative"}, "'health.path'"),
    ({"timeout": 3}, "unknown key 'health.timeout'"),
    (5, "'health'"),
])
def test_bad_health_tables_are_refused_naming_the_key(health, message):
    with pytest.raises(BadInput, match=message):
        parse(health=health)


class Server:
    """A local HTTP server that records each request and answers with a fixed status and body."""

    def __init__(self, status: int, body: bytes = b"", only: str | None = None):
        self.requests: list[bytes] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.status, self.body, self.only = status, body, only
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = conn.recv(65536)
                self.requests.append(data)
                status = self.status if self.only is None or data.startswith(self.only.encode()) else 405
                conn.sendall(b"HTTP/1.0 %d X\r\n\r\n" % status + self.body)


def test_the_probe_sends_the_method_headers_and_body_and_checks_the_text():
    server = Server(200, b'{"data":{"__typename":"Query"}}', only="POST")
    check = Health("/graphql", "POST", '{"query":"{__typename}"}', (("Content-Type", "application/json"),), 200,
                   "__typename")
    probe = http.probe("u", server.port, "/graphql", None, 2, check=check)
    assert probe.ok and probe.attempts == 1
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /graphql HTTP/1.0") and b"Content-Type: application/json" in head
    assert b"Content-Length: 24" in head and body == b'{"query":"{__typename}"}'


def test_a_4xx_that_was_not_asked_for_fails_at_once_instead_of_retrying():
    server = Server(200, only="POST")  # a GraphQL server: GET is 405
    probe = http.probe("u", server.port, "/graphql", None, 5, check=Health("/graphql"))
    assert not probe.ok and probe.status == 405 and probe.attempts == 1 and probe.seconds < 1
    assert "HTTP 405, expected a 2xx or 3xx answer" in probe.error


def test_a_missing_text_is_retried_until_the_deadline():
    server = Server(200, b'{"errors":["database is down"]}')
    probe = http.probe("u", server.port, "/", None, 0.4, check=Health("/", contains="__typename"))
    assert not probe.ok and probe.attempts > 1 and "without '__typename'" in probe.error


def test_an_expected_4xx_is_healthy():
    server = Server(401)
    assert http.probe("u", server.port, "/", None, 1, check=Health("/", status=401)).ok


# --- diagnoses -------------------------------------------------------------------------------

NODE_TRACE = ["node[12]: #\n", "node[12]: # Fatal error in , line 0", "node[12]:     at Object.<anonymous> (x.js:1)",
              "node[12]:     at Module._compile (node:internal)"] * 5


@pytest.mark.parametrize("journal, cause, hint", [
    (["systemd[1]: ripdep-x.service: Main process exited, code=exited, status=203/EXEC"], "203/EXEC", "'start'"),
    (["systemd[1]: ripdep-x.service: Main process exited, code=killed, status=31/SYS", *NODE_TRACE],
     "write\\+execute memory", 'profile = "jit"'),
    (["systemd[1]: ripdep-x.service: Main process exited, code=dumped, status=5/TRAP"], "sandbox", "jit"),
    (["app[3]: FATAL: database collation is en_US.UTF-8, this app needs C", "app[3]: exiting"], "collation",
     "database_locale"),
    (["app[3]: Error: listen EADDRINUSE: address already in use 0.0.0.0:3000", *NODE_TRACE], "does not use the PORT",
     r"\$\{PORT\}"),
])
def test_the_journal_line_that_names_the_cause_is_found_and_shown(journal, cause, hint):
    found = diagnose("x", journal, Probe("u", status=502))
    assert re.search(cause, found.cause) and re.search(hint, found.hint)
    assert found.line is not None and found.line in journal and not found.line.strip().startswith("node[12]:     at")


def test_an_app_that_exits_by_itself_is_told_apart_from_a_slow_one():
    exits = ["app[3]: config missing", "systemd[1]: ripdep-x.service: Main process exited, code=exited, status=3/NOTIMPLEMENTED"]
    found = diagnose("x", exits, Probe("u", status=502))
    assert found.cause == "the app exits soon after it starts" and "status=3" in found.line
    clean = ["systemd[1]: ripdep-x.service: Main process exited, code=exited, status=0/SUCCESS"]
    assert diagnose("x", clean, Probe("u", status=502)).cause == "the app did not answer its health check in time"


def test_a_4xx_is_a_wrong_health_check_and_a_wrong_port_is_said_so():
    assert "asks the wrong thing" in diagnose("x", ["app: started"], Probe("u", status=405)).cause
    wrong = diagnose("x", ["app: listening"], Probe("u", status=502), "it listens on port 3000, its PORT is 20001")
    assert "ignores the PORT" in wrong.cause and "3000" in wrong.cause
    assert "did not answer" in diagnose("x", [], Probe("u", status=502)).cause


# --- [files] through the engine ----------------------------------------------------------------

@pytest.fixture
def world(tmp_path):
    paths, source = fake_world(tmp_path)
    (source / "deploy").mkdir()
    host = FakeHost()

    def write(template: str, files: str = '"app.yaml" = "deploy/app.yaml.j2"', extra: str = ""):
        tpl = source / "deploy" / "app.yaml.j2"
        tpl.write_text(template)
        os.chmod(tpl, 0o644)
        path = tmp_path / "ripdep.toml"
        path.write_text(f'source = "{source}"\nstart = ["/usr/bin/python3", "app.py", "-c", "${{CONFIG_DIRECTORY}}/app.yaml"]\n'
                        f'delivery = "credentials"\n{extra}\n[secrets]\nTOKEN = "generate"\n[env]\nMODE = "prod"\n'
                        f'[files]\n{files}\n')
        return path

    def deploy(manifest, **kw):
        return engine.deploy("shop", manifest, paths=paths, host=host, **kw)
    return paths, host, write, deploy, source


def test_a_template_is_rendered_root_owned_for_the_app_and_a_change_restarts_it(world):
    paths, host, write, deploy, _ = world
    first = deploy(write("port: {{ PORT }}\nhost: {{ HOST }}\ndb: {{ DATABASE_URL }}\nmode: {{ MODE }}\n"
                         "token_file: {{ credential('TOKEN') }}\nstate: {{ STATE_DIRECTORY }}\n"))
    assert first.health.ok
    written = host.files[paths.config_dir("shop") / "app.yaml"]
    port = host.states["shop"].port
    assert written.content.decode() == (
        f"port: {port}\nhost: 127.0.0.1\ndb: postgresql:///shop?host=/run/postgresql\nmode: prod\n"
        f"token_file: /run/credentials/ripdep-shop.service/TOKEN\nstate: {paths.app_state_dir('shop')}\n")
    assert (written.mode, written.uid, written.gid) == (0o640, 0, host.users["shop"].gid)
    env = host.files[paths.env_file("shop")].content.decode()
    assert f'CONFIG_DIRECTORY="{paths.config_dir("shop")}"' in env
    host.mutations.clear()
    assert not deploy(write("port: {{ PORT }}\nhost: {{ HOST }}\ndb: {{ DATABASE_URL }}\nmode: {{ MODE }}\n"
                            "token_file: {{ credential('TOKEN') }}\nstate: {{ STATE_DIRECTORY }}\n")).changed
    changed = deploy(write("port: {{ PORT }}\n"))
    actions = [(c.id, c.action) for s in changed.steps for c in s.changes]
    assert ("file:shop/app.yaml", "update") in actions and ("service:ripdep-shop.service", "restart") in actions


def test_a_secret_goes_into_a_file_only_when_asked_and_never_into_a_diff(world):
    paths, host, write, deploy, _ = world
    with pytest.raises(BadInput, match=r"'files.app.yaml': the template asks for secret 'TOKEN' by value"):
        deploy(write("token: {{ secret('TOKEN') }}\n"))
    assert host.mutations == [] and not host.states
    manifest = write("token: {{ secret('TOKEN') }}\n", '"app.yaml" = { template = "deploy/app.yaml.j2", secrets = true }')
    result = deploy(manifest, check=True)
    assert "token: ********" in "".join(c.diff for s in result.steps for c in s.changes)
    deploy(manifest)
    token = host.store[(paths.secrets("shop"), "TOKEN")].reveal()
    assert host.files[paths.config_dir("shop") / "app.yaml"].content == f"token: {token}\n".encode()
    again = deploy(write("token: {{ secret('TOKEN') }}\nx: 1\n",
                         '"app.yaml" = { template = "deploy/app.yaml.j2", secrets = true }'), check=True)
    diffs = "".join(c.diff for s in again.steps for c in s.changes)
    assert "x: 1" in diffs and token not in diffs and "may hold secrets: not shown" in diffs


@pytest.mark.parametrize("template, message", [
    ("{{ NOPE }}", "'NOPE' is undefined"),
    ("{{ ''.__class__.__mro__ }}", "unsafe|not safely|access to attribute"),
    ("{% include '/etc/shadow' %}", "no loader"),
    ("{{ credential('NOPE') }}", "credential\\('NOPE'\\) needs secret NOPE"),
    ("{% for %}", "line 1"),
])
def test_bad_or_hostile_templates_are_refused_before_anything_changes(world, template, message):
    paths, host, write, deploy, _ = world
    with pytest.raises(BadInput, match=message):
        deploy(write(template))
    assert host.mutations == []


def test_a_template_reached_through_a_link_or_unreadable_to_others_is_refused(world, tmp_path):
    paths, host, write, deploy, source = world
    manifest = write("x")
    secret = tmp_path / "root-only"
    secret.write_text("root's secret\n")
    (source / "deploy" / "app.yaml.j2").unlink()
    (source / "deploy" / "app.yaml.j2").symlink_to(secret)
    with pytest.raises(BadInput, match="a link or a missing file"):
        deploy(manifest)
    (source / "deploy" / "app.yaml.j2").unlink()
    os.rename(source / "deploy", source / "real")
    (source / "deploy").symlink_to(source / "real")
    with pytest.raises(BadInput, match="a link or a missing file"):
        deploy(manifest)
    (source / "deploy").unlink()
    os.rename(source / "real", source / "deploy")
    (source / "deploy" / "app.yaml.j2").write_text("x")
    os.chmod(source / "deploy" / "app.yaml.j2", 0o600)
    with pytest.raises(BadInput, match="not readable by every user"):
        deploy(manifest)
    assert host.mutations == []


def test_a_file_dropped_from_the_manifest_is_removed_and_destroy_removes_the_folder(world):
    paths, host, write, deploy, _ = world
    deploy(write("a", '"app.yaml" = "deploy/app.yaml.j2"\n"b.yaml" = "deploy/app.yaml.j2"'))
    assert paths.config_dir("shop") / "b.yaml" in host.files
    result = deploy(write("a"))
    assert ("file:shop/b.yaml", "remove") in [(c.id, c.action) for s in result.steps for c in s.changes]
    assert paths.config_dir("shop") / "b.yaml" not in host.files
    engine.remove("shop", paths=paths, host=host)
    assert not any(p.is_relative_to(paths.config_dir("shop")) for p in host.files)
