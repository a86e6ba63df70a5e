"""Two apps side by side: neither reaches the other's database, files, environment or Caddy's admin API."""

import pytest

from conftest import manifest


@pytest.fixture(scope="module")
def pair(probe_factory, ct):
    a = probe_factory("iso-a", manifest(raw='[secrets]\nTOKEN = "generate"\n'))
    b = probe_factory("iso-b", manifest(raw='[secrets]\nTOKEN = "generate"\n'))
    ct.run("systemd-run", "--wait", "--quiet", "--uid=iso-b", "-p", "StateDirectory=ripdep/apps/iso-b",
           "-p", "StateDirectoryMode=0750", "/bin/sh", "-c", "echo b-data > /var/lib/ripdep/apps/iso-b/data", check=True)
    return a, b


def test_own_database_only(pair):
    a, b = pair
    own = a.op("db", dbname="iso-a")
    assert own == {"ok": True, "result": ["iso-a", "iso-a"]}  # positive control: peer auth works
    other = a.op("db", dbname="iso-b")
    assert not other["ok"] and "pg_hba.conf rejects connection" in other["error"]
    postgres = a.op("db", dbname="postgres")
    assert not postgres["ok"] and "pg_hba.conf rejects connection" in postgres["error"]
    template = a.op("db", dbname="template1")
    assert not template["ok"]


def test_other_apps_state_dir_is_closed(pair):
    a, b = pair
    assert b.op("read", path="/var/lib/ripdep/apps/iso-b/data") == {"ok": True, "result": "b-data\n"}
    denied = a.op("read", path="/var/lib/ripdep/apps/iso-b/data")
    assert not denied["ok"] and "Permission denied" in denied["error"]


def test_env_files_are_root_only(pair, ct):
    a, b = pair
    assert "TOKEN=" in ct.run("cat", "/etc/ripdep/env/iso-b.env", check=True).stdout  # root can
    for app in (a, b):  # not even the app itself: systemd reads it as root before dropping privileges
        assert not app.op("read", path="/etc/ripdep/env/iso-b.env")["ok"]
        assert not app.control("read", path="/etc/ripdep/env/iso-b.env")["ok"]
    assert not a.op("listdir", path="/etc/ripdep/secrets/iso-b")["ok"]


def test_other_apps_environ_is_invisible(pair):
    a, b = pair
    token = b.op("env", name="TOKEN")["result"]
    assert token and len(token) > 20
    assert b.op("read", path="/proc/self/environ")["ok"]  # positive control: its own
    b_pid = b.op("whoami")["result"]["pid"]  # PID inside b's PID view == host PID (no PID namespace)
    denied = a.op("read", path=f"/proc/{b_pid}/environ")
    assert not denied["ok"]
    assert not a.control("read", path=f"/proc/{b_pid}/environ")["ok"]  # other uid: refused even unhardened


def test_other_apps_code_is_closed(pair):
    a, b = pair
    assert not a.op("read", path="/srv/ripdep/iso-b/app.py")["ok"]
    assert b.op("read", path="/srv/ripdep/iso-b/app.py")["ok"]


def test_no_app_reaches_caddy_admin(pair, ct):
    a, _ = pair
    # positive control: root reaches the admin API on its unix socket
    ok = ct.run("curl", "-sS", "--unix-socket", "/run/caddy/admin.sock", "http://localhost/config/")
    assert ok.returncode == 0 and ok.stdout.startswith("{")
    assert not a.op("connect", host="127.0.0.1", port="2019")["ok"]  # no TCP admin endpoint at all
    denied = a.op("connect_unix", path="/run/caddy/admin.sock")
    assert not denied["ok"]
    assert not a.control("connect_unix", path="/run/caddy/admin.sock")["ok"]
