"""Hostile manifest values and CLI arguments against the real host: each is refused with a
documented exit code and leaves the host exactly as it was; none lands (issue 8)."""

import json

import pytest

from conftest import PROBE_SRC, App, manifest

BIG = "x" * (200 * 1024)


def snapshot(ct) -> str:
    """Every path ripdep owns (with mtime and size), databases, roles and users."""
    return ct.sh("find /etc/ripdep /var/lib/ripdep /srv/ripdep /etc/systemd/system /etc/caddy /var/backups/ripdep "
                 "-printf '%p %T@ %s %m\\n' 2>/dev/null | sort; "
                 "runuser -u postgres -- psql -XAtc 'select datname from pg_database order by 1'; "
                 "runuser -u postgres -- psql -XAtc 'select rolname, rolsuper from pg_roles order by 1'; getent passwd",
                 check=True).stdout


CASES = {
    # systemd ExecStart= prefixes: "+" would run the app as root outside its sandbox
    "plus": manifest(start='["+/usr/bin/python3", "app.py"]'),
    "bangbang": manifest(start='["!!/usr/bin/python3", "app.py"]'),
    "at": manifest(start='["@/usr/bin/python3", "python3", "app.py"]'),
    "dash": manifest(start='["-/usr/bin/python3", "app.py"]'),
    "colon": manifest(start='[":/usr/bin/python3", "app.py"]'),
    "combo": manifest(start='"-+/usr/bin/python3 app.py"'),
    # sources that would hand the app ripdep's secrets or the system's files
    "etc-ripdep": manifest(source="/etc/ripdep"),
    "root-fs": manifest(source="/"),
    "other-code": manifest(source="/srv/ripdep"),
    # values accepted by systemd or the kernel only to break the app later
    "huge-env": manifest(raw=f'[env]\nBIG = "{BIG}"\n'),
    "tiny-memory": manifest(raw='[limits]\nmemory = "1K"\n'),
    "dot-path": manifest(raw='[route]\npath = "/x/./"\n'),
    # host routes that would take over the path-route site
    "ip-host": manifest(raw='[route]\nhost = "127.0.0.1"\n'),
    "localhost": manifest(raw='[route]\nhost = "localhost"\n'),
    # empty strings that used to mean "the default" silently
    "empty-health": manifest().replace('health = "/healthz"', 'health = ""'),
    "empty-profile": manifest(profile='""'),
    "bogus-locale": manifest(database_locale='"xx_XX.bogus"'),
    "bad-egress": manifest(raw='[network]\negress = ["mail.example.com"]\n'),
    "deep-toml": "source = \"" + str(PROBE_SRC) + "\"\nstart = [\"/usr/bin/python3\", \"app.py\"]\nx = " + "[" * 2000 + "]" * 2000 + "\n",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_hostile_manifest_is_refused_and_changes_nothing(ct, case):
    name = f"bad-{case}"
    path = f"/root/manifests/{name}.toml"
    ct.write(path, CASES[case])
    before = snapshot(ct)
    proc = ct.ripdep("deploy", name, "--manifest", path, "--json")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 2 and doc["errors"][0]["code"] == "bad_input", (case, doc)
    assert snapshot(ct) == before, case
    assert ct.run("id", "-u", name).returncode != 0


def test_positive_control_the_same_manifest_without_the_hostile_value_deploys(ct):
    assert App(ct, "bad-control").deploy(manifest())[0] == 0


def test_an_injection_attempt_in_a_value_arrives_literally_and_lands_nowhere(ct):
    app = App(ct, "inject")
    value = 'a"\nExecStartPre=/bin/touch /root/pwned\n[Service]\nUser=root'
    code, doc = app.deploy(manifest(raw='[env]\nX = """' + value.replace("\\", "\\\\") + '"""\n'))
    assert code == 0, doc
    assert app.op("env", name="X")["result"] == value.replace("\\n", "\n")
    unit = ct.run("cat", "/etc/systemd/system/ripdep-inject.service", check=True).stdout
    assert "ExecStartPre" not in unit and ct.show("ripdep-inject.service", "User") == "inject"
    assert ct.run("test", "-e", "/root/pwned").returncode != 0


@pytest.mark.parametrize("name", ["../../ripdep.toml", "/root/x", "..", "A/B", "-rf", "X Y"])
def test_secret_commands_refuse_names_that_are_not_variable_names(probe_factory, ct, name):
    probe_factory("sec-victim")
    ct.run("touch", "/root/x", check=True)
    before = snapshot(ct)
    for args in (("unset", "sec-victim", name), ("rotate", "sec-victim", name)):
        proc = ct.ripdep("secret", *args, "--json")
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
    proc = ct.run("ripdep", "secret", "set", "sec-victim", name, "--json", input="value")
    assert proc.returncode == 2
    assert snapshot(ct) == before
    assert ct.run("test", "-e", "/root/x").returncode == 0
    assert ct.run("test", "-e", "/etc/ripdep/ripdep.toml").returncode == 0


def test_a_refused_new_app_leaves_no_claim_or_port_and_blocks_no_one(probe_factory, ct):
    owner = probe_factory("claim-owner")
    squatter = App(ct, "squatter")
    before = snapshot(ct)
    code, doc = squatter.deploy(manifest(raw='[route]\npath = "/claim-owner/"\n'))
    assert code == 9 and doc["errors"][0]["code"] == "conflict", doc
    # a later refusal in planning (an unknown locale) must not leave its claim either
    code, doc = squatter.deploy(manifest(raw='database_locale = "zz_ZZ.UTF-8"\n[route]\npath = "/free-path/"\n'))
    assert code == 2, doc
    assert snapshot(ct) == before
    assert ct.run("test", "-e", "/var/lib/ripdep/state/squatter.toml").returncode != 0
    assert App(ct, "free-taker").deploy(manifest(raw='[route]\npath = "/free-path/"\n'))[0] == 0
    assert ct.get_json(f"{owner.url}healthz") == {"ok": True}


def test_quick_changes_in_a_row_never_hit_the_start_limit(probe_factory, ct):
    probe_factory("quick")
    for i in range(7):  # StartLimitBurst=5 in 30 s
        proc = ct.ripdep("config", "set", "quick", f"N={i}", "--json")
        assert proc.returncode == 0, (i, proc.stdout)
    assert ct.get_json("http://127.0.0.1/quick/op/env?name=N")["result"] == "6"


def test_a_deploy_with_caddy_stopped_is_a_precondition_and_changes_nothing(ct):
    path = "/root/manifests/no-caddy.toml"
    ct.write(path, manifest())
    ct.run("systemctl", "stop", "caddy.service", check=True)
    try:
        before = snapshot(ct)
        proc = ct.ripdep("deploy", "no-caddy", "--manifest", path, "--json")
        assert proc.returncode == 3 and "caddy.service" in json.loads(proc.stdout)["msg"]
        assert snapshot(ct) == before
    finally:
        ct.run("systemctl", "start", "caddy.service", check=True)


def test_a_source_with_a_file_only_root_can_read_is_refused(ct):
    ct.sh(f"mkdir -p /opt/private-src && cp {PROBE_SRC}/app.py /opt/private-src/ && "
          "echo S3cr3t > /opt/private-src/passwords.dat && chmod 600 /opt/private-src/passwords.dat", check=True)
    path = "/root/manifests/private-src.toml"
    ct.write(path, manifest(source="/opt/private-src"))
    before = snapshot(ct)
    proc = ct.ripdep("deploy", "private-src", "--manifest", path, "--json")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 2 and "passwords.dat is not readable by every user" in doc["msg"], doc
    assert snapshot(ct) == before and "S3cr3t" not in proc.stdout + proc.stderr


HOSTILE_NAMES = ["../x", "-rf", "A", "x y", "root", "postgres", "ripdep-x", "a\nb", "x" * 40, "$(id)", "a;b", ""]
# every command that takes an app name, with whatever else it needs to get as far as the name check
COMMANDS = [["deploy", "{}"], ["deploy", "{}", "--check"], ["status", "{}"], ["logs", "{}"], ["start", "{}"],
            ["stop", "{}"], ["restart", "{}"], ["config", "get", "{}"], ["config", "set", "{}", "A=1"],
            ["config", "unset", "{}", "A"], ["secret", "list", "{}"], ["secret", "rotate", "{}", "TOKEN"],
            ["secret", "unset", "{}", "TOKEN"], ["backup", "{}"], ["backup", "list", "{}"],
            ["restore", "{}", "x", "--yes"], ["destroy", "{}", "--yes"], ["destroy", "{}", "--check"]]


def test_every_command_refuses_every_hostile_app_name_and_changes_nothing(probe_factory, ct):
    probe_factory("name-bystander")
    before = snapshot(ct)
    for command in COMMANDS:
        for name in HOSTILE_NAMES:
            argv = [name if word == "{}" else word for word in command]
            proc = ct.ripdep(*argv)
            assert proc.returncode == 2, (argv, proc.returncode, proc.stderr)
            assert "Traceback" not in proc.stderr, argv
    assert snapshot(ct) == before
    assert ct.get_json("http://127.0.0.1/name-bystander/healthz") == {"ok": True}


@pytest.mark.parametrize("argv", [
    ["config", "set", "name-bystander", "BAD KEY=1"], ["config", "set", "name-bystander", "PORT=1"],
    ["config", "set", "name-bystander", "NOEQUALS"], ["config", "unset", "name-bystander", "../x"],
    ["restore", "name-bystander", "../../../etc", "--yes"], ["restore", "name-bystander", "/etc", "--yes"],
    ["logs", "name-bystander", "--since", "-f"], ["logs", "name-bystander", "--since", "a\nb"]])
def test_hostile_arguments_are_refused_and_change_nothing(probe_factory, ct, argv):
    probe_factory("name-bystander")
    before = snapshot(ct)
    proc = ct.ripdep(*argv)
    assert proc.returncode == 2, (argv, proc.returncode, proc.stdout, proc.stderr)
    assert snapshot(ct) == before
