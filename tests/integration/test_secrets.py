"""Config and secrets: commands, SSM Parameter Store on a real HTTP endpoint (moto_server), and
systemd credentials."""

import json

from conftest import AWS, App, manifest, ssm, start_moto

TRICKY = "it's \"quoted\" $HOME ${X} 100% a\\b\nsecond line  "


def deploy(app: App, text: str | None = None):
    return app.deploy(text, env=AWS)


# --- config -------------------------------------------------------------------------------

def test_config_set_get_unset(probe_factory, ct):
    app = probe_factory("cfg", manifest(raw='# keep this comment\n[env]\nA = "1"  # and this one\n'))
    pid = app.main_pid()
    proc = ct.ripdep("config", "set", "cfg", "B=two words", "C=$x%y", "--json")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0 and doc["changed"] and doc["command"] == "config set"
    assert app.main_pid() != pid
    assert app.op("env", name="B")["result"] == "two words" and app.op("env", name="C")["result"] == "$x%y"
    text = ct.run("cat", "/etc/ripdep/apps/cfg.toml", check=True).stdout
    assert "# keep this comment" in text and '# and this one' in text
    assert json.loads(ct.ripdep("config", "get", "cfg", "--json").stdout)["data"]["env"] == {"A": "1", "B": "two words", "C": "$x%y"}
    # --no-restart: recorded, not applied until the next deploy
    pid = app.main_pid()
    assert ct.ripdep("config", "set", "cfg", "A=later", "--no-restart").returncode == 0
    assert app.main_pid() == pid and app.op("env", name="A")["result"] == "1"
    code, doc = ct.deploy_json("cfg")
    assert code == 0 and doc["changed"] and app.op("env", name="A")["result"] == "later"
    assert ct.ripdep("config", "unset", "cfg", "B").returncode == 0
    assert app.op("env", name="B")["result"] is None
    # refused: reserved names, bad keys, values with NUL; nothing changes
    before = ct.run("cat", "/etc/ripdep/apps/cfg.toml").stdout
    for bad in (["PORT=1"], ["1X=2"], ["NOEQUALS"]):
        assert ct.ripdep("config", "set", "cfg", *bad).returncode == 2
    assert ct.run("cat", "/etc/ripdep/apps/cfg.toml").stdout == before


def test_secret_set_list_rotate_unset(probe_factory, ct):
    app = probe_factory("sec", manifest(raw='[secrets]\nGEN = "generate"\n'))
    set_ = ct.run("ripdep", "secret", "set", "sec", "API_KEY", input=TRICKY + "\n")
    assert set_.returncode == 0, set_.stderr
    assert app.op("env", name="API_KEY")["result"] == TRICKY
    assert 'API_KEY = "stored"' in ct.run("cat", "/etc/ripdep/apps/sec.toml", check=True).stdout
    rows = {r["name"]: r for r in json.loads(ct.ripdep("secret", "list", "sec", "--json").stdout)["data"]["secrets"]}
    assert rows["API_KEY"]["source"] == "stored" and rows["GEN"]["source"] == "generate"
    assert all(r["has_value"] and r["last_change"] for r in rows.values())
    old, pid = app.op("env", name="GEN")["result"], app.main_pid()
    assert ct.ripdep("secret", "rotate", "sec", "GEN").returncode == 0
    assert app.op("env", name="GEN")["result"] not in (old, None) and app.main_pid() != pid
    assert ct.ripdep("secret", "rotate", "sec", "API_KEY").returncode == 2  # only generated ones rotate
    assert ct.ripdep("secret", "unset", "sec", "API_KEY").returncode == 0
    assert app.op("env", name="API_KEY")["result"] is None
    assert ct.run("test", "-e", "/etc/ripdep/secrets/sec/API_KEY").returncode != 0
    assert ct.run("ripdep", "secret", "set", "sec", "EMPTY", input="").returncode == 2


# --- SSM ----------------------------------------------------------------------------------

def test_ssm_path_with_paging_and_tricky_values(moto, ct):
    params = {f"/ripdep/shop-a/key-{i:02d}": f"value {i}" for i in range(12)}
    params["/ripdep/shop-a/db/password"] = TRICKY
    ssm(ct, "put", params)
    ssm(ct, "put", {"/ripdep/single": "one-param"})
    app = App(ct, "shop-a")
    code, doc = deploy(app, manifest(raw='secrets_from = ["ssm:/ripdep/shop-a/"]\n[secrets]\nSINGLE = "ssm:/ripdep/single"\n'))
    assert code == 0, doc
    for i in range(12):
        assert app.op("env", name=f"KEY_{i:02d}")["result"] == f"value {i}"
    assert app.op("env", name="DB_PASSWORD")["result"] == TRICKY
    assert app.op("env", name="SINGLE")["result"] == "one-param"
    # unchanged in SSM: nothing changes
    code, doc = deploy(app)
    assert code == 0 and doc["changed"] is False
    # one value changed: the next deploy rewrites the env file and restarts
    pid = app.main_pid()
    ssm(ct, "put", {"/ripdep/shop-a/key-03": "rotated in ssm"})
    code, doc = deploy(app)
    assert code == 0 and doc["changed"]
    assert {"secret:shop-a/KEY_03", "env:shop-a", "service:ripdep-shop-a.service"} <= {a["id"] for a in doc["actions"]}
    assert app.main_pid() != pid and app.op("env", name="KEY_03")["result"] == "rotated in ssm"


def test_ssm_failures_change_nothing(moto, ct):
    # an app and parameters of its own, deployed here: it must not rely on what an earlier test left
    # in SSM (the endpoint may just have been restarted empty) or on an app an earlier test deployed
    ssm(ct, "put", {"/ripdep/shop-b/key": "served before the failures"})
    app = App(ct, "shop-b")
    code, doc = deploy(app, manifest(raw='secrets_from = ["ssm:/ripdep/shop-b/"]\n'))
    assert code == 0, doc
    assert app.op("env", name="KEY")["result"] == "served before the failures"
    pid = app.main_pid()
    env_before = ct.run("md5sum", "/etc/ripdep/env/shop-b.env").stdout
    # a missing parameter
    code, doc = app.deploy(manifest(raw='secrets_from = ["ssm:/ripdep/shop-b/"]\n[secrets]\nSINGLE = "ssm:/ripdep/nope"\n'),
                           env=AWS)
    assert code == 3 and "/ripdep/nope does not exist" in doc["msg"]
    # no credentials
    code, doc = ct.deploy_json("shop-b", env={k: v for k, v in AWS.items() if not k.endswith("_KEY_ID")}
                               | {"AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent"})
    assert code == 3 and "no AWS credentials" in doc["msg"]
    # the endpoint is down
    ct.run("systemctl", "stop", "moto", check=True)
    try:
        code, doc = ct.deploy_json("shop-b", env=AWS)
        assert code == 3 and "cannot reach SSM" in doc["msg"]
    finally:
        start_moto(ct)  # a fresh, empty endpoint for whatever runs next
    assert app.main_pid() == pid
    assert ct.run("md5sum", "/etc/ripdep/env/shop-b.env").stdout == env_before
    assert app.op("env", name="KEY")["result"] == "served before the failures"  # still serving its old values


# --- credentials delivery -----------------------------------------------------------------

def test_credentials_delivery(probe_factory, ct):
    app = probe_factory("credy", manifest(raw='delivery = "credentials"\n[secrets]\nTOKEN = "generate"\n'))
    other = probe_factory("credy-other")
    value = ct.run("cat", "/etc/ripdep/secrets/credy/TOKEN", check=True).stdout
    creds = app.op("env", name="CREDENTIALS_DIRECTORY")["result"]
    assert creds == "/run/credentials/ripdep-credy.service"
    assert app.op("read", path=f"{creds}/TOKEN") == {"ok": True, "result": value}
    assert app.op("env", name="TOKEN")["result"] is None
    environ = ct.run("cat", f"/proc/{app.main_pid()}/environ", check=True).stdout
    assert value not in environ and "TOKEN=" not in environ
    assert value not in ct.run("cat", "/etc/ripdep/env/credy.env", check=True).stdout
    assert not other.op("read", path=f"{creds}/TOKEN")["ok"]
    assert not other.control("read", path=f"{creds}/TOKEN")["ok"]
    # rotation restarts it with the new value
    assert ct.ripdep("secret", "rotate", "credy", "TOKEN").returncode == 0
    new = ct.run("cat", "/etc/ripdep/secrets/credy/TOKEN", check=True).stdout
    assert new != value and app.op("read", path=f"{creds}/TOKEN")["result"] == new


def test_diff_never_shows_a_removed_secret_nor_secrets_moving_to_credentials(ct):
    app = App(ct, "difflet")
    code, doc = app.deploy(manifest(raw='[env]\nPLAIN = "shown"\n[secrets]\nGONE = "generate"\nKEPT = "generate"\n'))
    assert code == 0, doc
    values = [ct.run("cat", f"/etc/ripdep/secrets/difflet/{k}", check=True).stdout for k in ("GONE", "KEPT")]
    assert all(len(v) > 20 for v in values)
    for text in (manifest(raw='[env]\nPLAIN = "changed"\n[secrets]\nKEPT = "generate"\n'),  # a secret removed
                 manifest(raw='delivery = "credentials"\n[env]\nPLAIN = "changed"\n'
                              '[secrets]\nGONE = "generate"\nKEPT = "generate"\n')):  # env -> credentials
        app.ct.write(app.manifest_path, text)
        for extra in (("--json",), ()):
            proc = ct.ripdep("deploy", "difflet", "--manifest", app.manifest_path, "--check", "--diff", *extra)
            out = proc.stdout + proc.stderr
            assert proc.returncode == 0 and "PLAIN" in out, out  # positive control: the diff is there
            assert not any(v in out for v in values), out
