"""Integration tests run ripdep inside a throw-away container whose PID 1 is a real systemd
(tests/ct.sh), with the host's PostgreSQL, Caddy and /opt/ripdep. One container per session.

No test relies on another having run before it: each test, or a fixture of its module, deploys the
apps it uses (probe_factory, App) and puts them in the state it needs; a test that leaves a shared
app changed (stopped, crashed, an extra listener in it) either puts it back or the fixture of the
next test does. Check a change with a shuffled order too: with pytest-randomly installed,
`-p randomly --randomly-seed=N` (modules stay together, their order and the order inside each is
shuffled)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import textwrap
import urllib.parse
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CT = ROOT / "tests" / "ct.sh"
PROBE_SRC = ROOT / "tests" / "fixtures" / "probe"
TEST_VENV = Path(os.environ.get("RIPDEP_TEST_VENV", "/opt/ripdep-test"))
# the ripdep under test: install.sh's RIPDEP_PREFIX, so that two checkouts can each test their own
PREFIX = Path(os.environ.get("RIPDEP_PREFIX", "/opt/ripdep"))


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


class Container:
    def __init__(self, name: str):
        self.env = {"CT_NAME": name, "CT_STATE": f"/var/tmp/{name}", **{k: v for k, v in os.environ.items() if k == "PATH"}}
        binds = [f"--bind={ROOT}", f"--bind-ro={PREFIX}"]
        if TEST_VENV.is_dir():
            binds.append(f"--bind-ro={TEST_VENV}")
        self.env["CT_BINDS"] = " ".join(binds)

    def start(self) -> None:
        subprocess.run([str(CT), "start"], env=self.env, check=True, timeout=120)
        # the host's /usr/local/bin/ripdep points at whichever prefix was installed last
        self.run("ln", "-sfn", f"{PREFIX}/bin/ripdep", "/usr/local/bin/ripdep", check=True)

    def stop(self) -> None:
        subprocess.run([str(CT), "stop"], env=self.env, timeout=60)

    def run(self, *argv: str, check: bool = False, input: str | None = None, env: dict | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
        extra = [f"{k}={v}" for k, v in (env or {}).items()]
        proc = subprocess.run([str(CT), "exec", "/usr/bin/env", *extra, *argv], env=self.env, input=input,
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{shlex.join(argv)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def sh(self, code: str, **kw) -> subprocess.CompletedProcess:
        return self.run("/bin/bash", "-c", code, **kw)

    def write(self, path: str, text: str, mode: str = "0644") -> None:
        self.sh(f"mkdir -p {shlex.quote(str(Path(path).parent))} && cat > {shlex.quote(path)} && chmod {mode} {shlex.quote(path)}",
                input=text, check=True)

    def ripdep(self, *args: str, env: dict | None = None, check: bool = False,
               timeout: float = 180) -> subprocess.CompletedProcess:
        return self.run("ripdep", *args, env=env, check=check, timeout=timeout)

    def deploy_json(self, app: str, *args: str, env: dict | None = None) -> tuple[int, dict]:
        proc = self.ripdep("deploy", app, "--json", *args, env=env)
        try:
            doc = json.loads(proc.stdout)
        except ValueError:
            raise AssertionError(f"stdout is not one JSON document:\n{proc.stdout}\n{proc.stderr}") from None
        return proc.returncode, doc

    def curl(self, url: str, *args: str) -> subprocess.CompletedProcess:
        return self.run("curl", "-sS", "--max-time", "10", *args, url)

    def get_json(self, url: str) -> dict:
        proc = self.curl(url)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def show(self, unit: str, prop: str) -> str:
        return self.run("systemctl", "show", "-P", prop, unit, check=True).stdout.strip()


@pytest.fixture(scope="session")
def ct():
    problems = []
    if os.geteuid() != 0:
        problems.append("not root")
    if not shutil.which("systemd-nspawn"):
        problems.append("systemd-nspawn missing (apt-get install systemd-container)")
    if not (PREFIX / "bin/ripdep").exists():
        problems.append(f"{PREFIX} missing (sudo ./install.sh)")
    if problems:
        if os.environ.get("RIPDEP_REQUIRE_INTEGRATION"):
            pytest.fail("integration tests cannot run: " + "; ".join(problems))
        pytest.skip("integration tests need: " + "; ".join(problems))
    c = Container(f"ripdep-test-{os.getpid()}")
    c.start()
    try:
        c.ripdep("init", check=True)
        # no watch window after each release switch: most tests change an app many times and are not
        # about releases; test_releases.py sets [releases] watch where it is the subject
        c.sh("sed -i 's/^releases_watch = .*/releases_watch = 0/' /etc/ripdep/ripdep.toml", check=True)
        yield c
    finally:
        c.stop()


def manifest(source: str = str(PROBE_SRC), start: str = '["/usr/bin/python3", "app.py"]', **sections) -> str:
    """A manifest text; sections are extra TOML lines or tables given as raw strings."""
    text = f'source = "{source}"\nstart = {start}\nhealth = "/healthz"\n'
    for key, value in sections.items():
        text += f"{value}\n" if key.startswith("raw") else f"{key} = {value}\n"
    return textwrap.dedent(text)


class App:
    """A probe app deployed in the container."""

    def __init__(self, ct: Container, name: str):
        self.ct, self.name = ct, name
        self.manifest_path = f"/root/manifests/{name}.toml"

    def deploy(self, text: str | None = None, *args: str, env: dict | None = None) -> tuple[int, dict]:
        if text is not None:
            self.ct.write(self.manifest_path, text)
        return self.ct.deploy_json(self.name, "--manifest", self.manifest_path, *args, env=env)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1/{self.name}/"

    def op(self, op: str, /, **args) -> dict:
        return self.ct.get_json(f"{self.url}op/{op}?{urllib.parse.urlencode(args)}")

    def control(self, op: str, /, *, properties: tuple[str, ...] = (), **args) -> dict:
        """The same op run once as the app's user in an unhardened transient unit (positive control)."""
        argv = ["systemd-run", "--wait", "--pipe", "--quiet", f"--uid={self.name}", f"--gid={self.name}",
                *(f"--property={p}" for p in properties),
                "/usr/bin/python3", f"/srv/ripdep/{self.name}/app.py", op, *(f"{k}={v}" for k, v in args.items())]
        proc = self.ct.run(*argv)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def main_pid(self) -> int:
        return int(self.ct.show(f"ripdep-{self.name}.service", "MainPID"))


@pytest.fixture(scope="session")
def probe_factory(ct):
    made: dict[str, App] = {}

    def make(name: str, text: str | None = None) -> App:
        app = made.get(name) or App(ct, name)
        made[name] = app
        if text is None:
            text = manifest()
        code, doc = app.deploy(text)
        assert code == 0, doc
        return app
    return make


MOTO_PORT = 5055
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
       "AWS_ENDPOINT_URL_SSM": f"http://127.0.0.1:{MOTO_PORT}"}


def start_moto(ct) -> None:
    """moto_server as a transient unit on loopback inside the container (a real HTTP endpoint).
    Started again when gone: other tests isolate the container to rescue.target and back."""
    if ct.run("systemctl", "is-active", "--quiet", "moto.service").returncode == 0:
        return
    ct.run("systemctl", "reset-failed", "moto.service")
    ct.run("systemd-run", "--unit=moto", f"{TEST_VENV}/bin/moto_server", "-H", "127.0.0.1", "-p", str(MOTO_PORT),
           check=True)
    ct.sh(f"for i in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:{MOTO_PORT}/ && exit 0; sleep 0.1; done; exit 1",
          check=True)


@pytest.fixture
def moto(ct):
    start_moto(ct)


def ssm(ct, action: str, params: dict) -> None:
    ct.run(f"{TEST_VENV}/bin/python", str(ROOT / "tests/fixtures/aws.py"), action, input=json.dumps(params),
           env=AWS, check=True)
