"""The example app end to end, and idempotency."""

import json
import re

import pytest

from conftest import PREFIX, ROOT

EXAMPLE = "examples/hello/ripdep.toml"
MANAGED = ["/etc/ripdep", "/var/lib/ripdep/state", "/srv/ripdep", "/etc/systemd/system", "/etc/caddy"]


def snapshot(ct) -> str:
    """path, mtime, size, mode and owner of every managed file."""
    return ct.sh("find " + " ".join(MANAGED) + " -printf '%p %T@ %s %m %u:%g\\n' | sort", check=True).stdout


@pytest.fixture(scope="module")
def hello(ct):
    """The example app, deployed once for this module by whichever test needs it first; the
    document of that first deploy, which created it."""
    code, doc = ct.deploy_json("hello", "--manifest", str(ROOT / EXAMPLE))
    assert code == 0, doc
    return doc


def test_example_app_answers_through_caddy_from_its_own_database(ct, hello):
    doc = hello
    assert doc["changed"] is True and doc["url"] == "http://127.0.0.1/hello/"
    assert doc["health"]["ok"] is True
    ids = {a["id"] for a in doc["actions"]}
    assert {"user:hello", "role:hello", "database:hello", "env:hello", "code:hello",
            "unit:ripdep-hello.service", "service:ripdep-hello.service", "route:hello"} <= ids
    first = ct.get_json(doc["url"])
    second = ct.get_json(doc["url"])
    # read from its own database, as its own role, by peer auth from inside the hardened unit
    assert first["database"] == "hello" and first["db_user"] == "hello"
    assert second["visits"] == first["visits"] + 1
    assert first["mount_path"] == "/hello"
    redirect = ct.curl("http://127.0.0.1/hello", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}")
    assert redirect.stdout == "308 http://127.0.0.1/hello/"


def test_second_deploy_changes_nothing(ct, hello):
    before = snapshot(ct)
    pid = ct.show("ripdep-hello.service", "MainPID")
    code, doc = ct.deploy_json("hello")
    assert code == 0, doc
    assert doc["changed"] is False and doc["actions"] == []
    assert doc["health"]["ok"] is True
    assert snapshot(ct) == before
    assert ct.show("ripdep-hello.service", "MainPID") == pid


def test_human_output_one_line_per_step(ct, hello):
    proc = ct.ripdep("deploy", "hello")
    assert proc.returncode == 0
    lines = proc.stderr.splitlines()
    assert any(l.startswith("user hello ... unchanged (uid") for l in lines)
    assert any(re.match(r"unit ripdep-hello.service \.\.\. unchanged", l) for l in lines)
    assert proc.stdout.startswith("hello: unchanged, http://127.0.0.1/hello/, healthy")


def test_files_modes_and_owners(ct, hello):
    stat = lambda p: ct.run("stat", "-c", "%a %U:%G", p, check=True).stdout.strip()  # noqa: E731
    assert stat("/etc/ripdep/env/hello.env") == "600 root:root"
    assert stat("/etc/ripdep/secrets/hello") == "700 root:root"
    assert stat("/etc/ripdep/secrets/hello/SECRET_KEY") == "600 root:root"
    # the code folder is a link (root's) to the live release's tree: root's, group hello, no write bit
    assert ct.run("stat", "-c", "%F %U", "/srv/ripdep/hello", check=True).stdout.strip() == "symbolic link root"
    assert stat("/srv/ripdep/hello/") == "750 root:hello"
    assert stat("/srv/ripdep/hello/app.py") == "640 root:hello"
    assert stat("/srv/ripdep/hello.releases") == "711 root:root"  # other apps may pass, not list
    assert stat("/var/lib/ripdep/releases/hello") == "700 root:root"
    assert stat("/var/lib/ripdep/apps/hello") == "750 hello:hello"
    assert stat("/var/lib/ripdep/state/hello.toml") == "600 root:root"
    passwd = ct.run("getent", "passwd", "hello", check=True).stdout.strip().split(":")
    assert passwd[4] == "ripdep app hello" and passwd[6] == "/usr/sbin/nologin"
    state = ct.run("cat", "/var/lib/ripdep/state/hello.toml", check=True).stdout
    assert state.startswith("# managed by ripdep") and "port = " in state


def test_secret_generated_once_and_kept(ct, hello):
    read = lambda: ct.run("cat", "/etc/ripdep/secrets/hello/SECRET_KEY", check=True).stdout  # noqa: E731
    value = read()
    assert len(value) >= 40
    ct.deploy_json("hello")
    assert read() == value
    env = ct.run("cat", "/etc/ripdep/env/hello.env", check=True).stdout
    assert f'SECRET_KEY="{value}"' in env
    proc = ct.ripdep("deploy", "hello", "--json", "--diff")
    assert value not in proc.stdout + proc.stderr


def test_unit_passes_verify_and_scores_within_gate(ct, hello):
    verify = ct.run("systemd-analyze", "verify", "/etc/systemd/system/ripdep-hello.service")
    assert verify.returncode == 0 and verify.stderr.strip() == ""
    out = ct.run("systemd-analyze", "security", "--offline=true", "/etc/systemd/system/ripdep-hello.service").stdout
    score = float(re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out).group(1))
    assert score <= 1.5


def test_listener_is_on_loopback_only(ct, hello):
    port = json.loads(ct.ripdep("deploy", "hello", "--json").stdout)["port"]
    pid = ct.show("ripdep-hello.service", "MainPID")
    # inside its own network namespace, on its loopback only ...
    inside = ct.run("nsenter", "-t", pid, "-n", "ss", "-Hltnp", check=True).stdout.splitlines()
    listeners = [l for l in inside if f"pid={pid}," in l]
    assert listeners and all(l.split()[3] == f"127.0.0.1:{port}" for l in listeners)
    # ... and nothing of it in the host's
    assert not [l for l in ct.run("ss", "-Hltnp").stdout.splitlines() if f"pid={pid}," in l or f":{port} " in l]


def test_check_changes_no_file(ct, hello):
    text = (ROOT / EXAMPLE).read_text().replace('GREETING = "Hello"', 'GREETING = "Changed"')
    ct.write("/root/hello-changed.toml", text.replace('source = "."', f'source = "{ROOT}/examples/hello"'))
    before = snapshot(ct)
    code, doc = ct.deploy_json("hello", "--manifest", "/root/hello-changed.toml", "--check", "--diff")
    assert code == 0, doc
    assert doc["check"] is True and doc["changed"] is False
    assert {a["id"] for a in doc["actions"]} >= {"manifest:hello", "env:hello", "service:ripdep-hello.service"}
    assert any('+GREETING="Changed"' in d for d in doc["diff"])
    assert any("SECRET_KEY=********" in d for d in doc["diff"])
    assert snapshot(ct) == before


def test_bad_input_changes_nothing(ct):
    before = snapshot(ct)
    ct.write("/root/bad.toml", 'source = "/nonexistent"\nstart = "x"\n[route]\nhost = "a.b {"\n')
    code, doc = ct.deploy_json("bad-app", "--manifest", "/root/bad.toml")
    assert code == 2 and doc["errors"][0]["code"] == "bad_input" and "route.host" in doc["msg"]
    assert ct.run("getent", "passwd", "bad-app").returncode != 0
    assert snapshot(ct) == before


def test_foreign_user_is_never_adopted(ct):
    ct.run("useradd", "--system", "somebody", check=True)
    before = snapshot(ct)
    code, doc = ct.deploy_json("somebody", "--manifest", str(ROOT / EXAMPLE))
    assert code == 9 and doc["errors"][0]["code"] == "conflict"
    assert snapshot(ct) == before


def test_no_change_deploy_imports_neither_boto3_nor_psycopg(ct, hello):
    # the speed design: heavy modules only on the paths that use them
    assert ct.deploy_json("hello", "--manifest", str(ROOT / EXAMPLE))[0] == 0
    proc = ct.run(f"{PREFIX}/bin/ripdep", "deploy", "hello", "--json", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert proc.returncode == 0
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "ripdep.engine" in imported
    assert not {m for m in imported if m.split(".")[0] in ("boto3", "botocore", "psycopg")}
