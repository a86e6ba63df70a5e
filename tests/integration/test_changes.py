"""Changes: env values restart the app and arrive intact; a bad Caddy config never goes live."""

import json

from conftest import PREFIX, ROOT, App, manifest

TRICKY = {
    "QUOTES": "it's \"quoted\"",
    "DOLLAR": "$HOME ${PATH} $$",
    "PERCENT": "100% %n %%",
    "SPACES": "  leading and trailing  ",
    "BACKSLASH": "C:\\path\\n\\\\",
    "NEWLINE": "line1\nline2",
    "BACKTICK": "`id`",
    "HASH": "#not a comment",
    "UNICODE": "grüß € ✓",
}


def toml_table(name: str, values: dict) -> str:
    return f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())


def test_env_change_restarts_and_is_visible(probe_factory, ct):
    app = probe_factory("envy", manifest(raw=toml_table("env", {"COLOUR": "red"})))
    pid = app.main_pid()
    assert app.op("env", name="COLOUR")["result"] == "red"
    code, doc = app.deploy(manifest(raw=toml_table("env", {"COLOUR": "blue"})))
    assert code == 0 and doc["changed"]
    assert {"id": "service:ripdep-envy.service", "action": "restart",
            "detail": "restart ripdep-envy.service (unit, env or code changed)"} in doc["actions"]
    assert app.main_pid() != pid
    assert app.op("env", name="COLOUR")["result"] == "blue"


def test_tricky_env_values_reach_the_app_unchanged(probe_factory):
    app = probe_factory("tricky", manifest(raw=toml_table("env", TRICKY)))
    for key, value in TRICKY.items():
        assert app.op("env", name=key) == {"ok": True, "result": value}, key


def caddy_snapshot(ct) -> str:
    return ct.sh("cat /etc/caddy/Caddyfile; for f in /etc/caddy/ripdep/*/*; do echo \"== $f\"; cat \"$f\"; done; "
                 "curl -s --unix-socket /run/caddy/admin.sock http://localhost/config/", check=True).stdout


def test_two_apps_claiming_one_host_or_path_never_go_live(probe_factory, ct):
    host_route = '[route]\nhost = "shop.example.com"\n'
    probe_factory("shop-one", manifest(raw=host_route))
    probe_factory("path-owner")
    before = caddy_snapshot(ct)
    code, doc = App(ct, "shop-two").deploy(manifest(raw=host_route))
    assert code == 9 and doc["errors"][0]["code"] == "conflict"
    assert "claimed by app shop-one" in doc["msg"]
    # a path: Caddy itself would accept the duplicate and silently shadow one app
    code, doc = App(ct, "shop-three").deploy(manifest(raw='[route]\npath = "/path-owner/"\n'))
    assert code == 9 and "claimed by app path-owner" in doc["msg"]
    assert ct.run("getent", "passwd", "shop-two").returncode != 0  # refused before the host changed
    assert caddy_snapshot(ct) == before
    answer = ct.curl("http://127.0.0.1/healthz", "-H", "Host: shop.example.com")
    assert answer.returncode == 0 and json.loads(answer.stdout) == {"ok": True}


def test_broken_template_never_goes_live(probe_factory, ct):
    survivor = probe_factory("survivor")
    broken = "/root/broken-templates"
    ct.sh(f"rm -rf {broken} && mkdir -p {broken} && cp -r {PREFIX}/current/ripdep/templates/* {broken}/ && "
          # an unclosed brace: `caddy validate` alone would accept it and swallow the blocks after it
          f"sed -i 's/^}}$//' {broken}/caddy/path.caddy.j2", check=True)
    before = caddy_snapshot(ct)
    app = App(ct, "victim")
    code, doc = app.deploy(manifest(), env={"RIPDEP_TEMPLATES": broken})
    assert code == 6 and doc["errors"][0]["code"] == "validation_failed", doc
    assert caddy_snapshot(ct) == before
    assert ct.get_json(f"{survivor.url}healthz") == {"ok": True}
    # and with the real templates the same app deploys
    code, doc = app.deploy()
    assert code == 0, doc


def test_manifest_from_another_folder_resolves_source(ct):
    code, doc = ct.deploy_json("relocated", "--manifest", str(ROOT / "examples/hello/ripdep.toml"))
    assert code == 0
    installed = ct.run("cat", "/etc/ripdep/apps/relocated.toml", check=True).stdout
    assert f'source = "{ROOT}/examples/hello"' in installed
    assert "# ripdep manifest of the example app" in installed  # comments kept


def test_database_locale(probe_factory, ct):
    app = probe_factory("collated", manifest(raw='database_locale = "C"\n'))
    collate = ct.run("runuser", "-u", "postgres", "--", "psql", "-XAtc",
                     "select datcollate from pg_database where datname = 'collated'", check=True).stdout.strip()
    assert collate == "C"
    assert app.op("db", dbname="collated")["ok"]
    # the cluster default differs (C.UTF-8); asking for another locale later is refused, nothing changes
    code, doc = app.deploy(manifest(raw='database_locale = "C.UTF-8"\n'))
    assert code == 3 and "cannot be changed in place" in doc["msg"]


def test_a_start_script_inside_the_code_folder_deploys_the_first_time(ct):
    ct.sh(f"mkdir -p /opt/runsh-src && cp {ROOT}/tests/fixtures/probe/app.py /opt/runsh-src/ && "
          "printf '#!/bin/sh\\nexec /usr/bin/python3 app.py\\n' > /opt/runsh-src/run.sh && "
          "chmod 755 /opt/runsh-src/run.sh", check=True)
    app = App(ct, "runsh")
    code, doc = app.deploy(manifest(source="/opt/runsh-src", start='["./run.sh"]'))
    assert code == 0, doc
    assert ct.get_json(f"{app.url}healthz") == {"ok": True}
    assert "path=/srv/ripdep/runsh/run.sh ;" in ct.show("ripdep-runsh.service", "ExecStart")
