import shlex
from pathlib import Path

import pytest

from ripdep import render
from ripdep.errors import PreconditionFailed, ValidationFailed
from ripdep.spec import parse_manifest

MANIFEST = Path("/srv/src/hello/ripdep.toml")


def spec(**overrides):
    data = {"source": ".", "start": ["/usr/bin/python3", "app.py"], **overrides}
    return parse_manifest("hello", data, MANIFEST)


def directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return out


def test_unit_has_the_full_hardening_set():
    d = directives(render.render_unit(spec()))
    for key, value in {
        "User": "hello", "Group": "hello", "NoNewPrivileges": "yes", "CapabilityBoundingSet": "",
        "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
        "PrivateUsers": "yes", "ProtectProc": "invisible", "ProcSubset": "pid", "MemoryDenyWriteExecute": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6", "IPAddressDeny": "any",
        "IPAddressAllow": "localhost", "SystemCallArchitectures": "native", "SystemCallErrorNumber": "EPERM",
        "UMask": "0077", "StateDirectory": "ripdep/apps/hello", "StateDirectoryMode": "0750",
        "Restart": "on-failure", "WantedBy": "multi-user.target", "EnvironmentFile": "/etc/ripdep/env/hello.env",
        "WorkingDirectory": "/srv/ripdep/hello",
    }.items():
        assert d[key] == [value], key
    assert d["SystemCallFilter"] == ["@system-service", "~@privileged @resources"]
    assert "postgresql.service" in d["After"][0]
    assert render.render_unit(spec()).startswith("# managed by ripdep: app hello\n")


def test_jit_profile_drops_mdwe_and_allows_pkey():
    d = directives(render.render_unit(spec(profile="jit")))
    assert "MemoryDenyWriteExecute" not in d
    assert d["SystemCallFilter"][0] == "@system-service @pkey"


def test_limits_rendered_only_when_set():
    d = directives(render.render_unit(spec()))
    assert "MemoryMax" not in d and "TasksMax" not in d and "CPUQuota" not in d
    d = directives(render.render_unit(spec(limits={"memory": "64M", "cpu": "50%", "tasks": 10})))
    assert d["MemoryMax"] == ["64M"] and d["CPUQuota"] == ["50%"] and d["TasksMax"] == ["10"]


@pytest.mark.parametrize("word", ["plain", "with space", 'q"uote', "back\\slash", "$HOME", "${X}", "100%", "%n", "it's"])
def test_exec_words_are_quoted_against_expansion(word):
    quoted = render.systemd_word(word)
    assert quoted.startswith('"') and quoted.endswith('"')
    # systemd undoes exactly these: %% -> %, $$ -> $, then C-style unquoting
    inner = quoted[1:-1].replace("%%", "\0P").replace("$$", "\0D")
    assert "%" not in inner and "$" not in inner
    unquoted = shlex.split(inner.replace("\0P", "%").replace("\0D", "$").join('""'))[0]
    assert unquoted == word


def test_relative_program_resolves_in_code_folder():
    text = render.render_unit(spec(start="./run.sh --port 1"))
    assert 'ExecStart="/srv/ripdep/hello/run.sh" "--port" "1"' in text


@pytest.mark.parametrize("value", ["", "plain", "a b  c", "q\"uote", "it's", "$HOME", "${X}", "`id`", "100%",
                                   "back\\slash", "\\\"", "trailing\\", "multi\nline\n", "ü €", "a=b", "#hash"])
def test_env_file_round_trip(value):
    text = render.render_env_file("hello", {"A": value, "B": "x"}, {"S": value})
    assert text.startswith("# managed by ripdep: app hello\n")
    assert render.parse_env_file(text) == {"A": value, "B": "x", "S": value}


def test_env_file_masks_secrets():
    text = render.render_env_file("hello", {"A": "visible"}, {"S": "hunter2"})
    masked = render.mask_env_file(text, {"S"})
    assert "hunter2" not in masked and "visible" in masked and "S=********" in masked


def test_path_snippet_proxies_to_the_apps_socket_never_a_port():
    text = render.render_snippet(spec())
    assert text.startswith("# managed by ripdep: app hello\n")
    assert "redir /hello /hello/ 308" in text
    assert "handle_path /hello/* {" in text
    assert "reverse_proxy unix//run/ripdep/hello.sock" in text
    assert "127.0.0.1" not in text
    assert text.count("{") == text.count("}")


def test_host_snippet_plain_http_unless_tls():
    assert "http://shop.example.com {" in render.render_snippet(spec(route={"host": "shop.example.com"}))
    tls = render.render_snippet(spec(route={"host": "shop.example.com", "tls": True}))
    assert "\nshop.example.com {" in tls


def test_app_gets_its_own_network_namespace_and_wants_its_socket():
    d = directives(render.render_unit(spec()))
    assert d["PrivateNetwork"] == ["yes"] and d["IPAddressAllow"] == ["localhost"]
    assert d["Wants"] == ["ripdep-hello.proxy.socket"]


def test_egress_apps_share_the_hosts_network_with_their_allow_list_only():
    d = directives(render.render_unit(spec(network={"egress": ["192.0.2.10", "2001:db8::/64"]})))
    assert "PrivateNetwork" not in d
    assert d["IPAddressDeny"] == ["any"] and d["IPAddressAllow"] == ["localhost 192.0.2.10/32 2001:db8::/64"]


def test_proxy_units_join_the_apps_namespace_and_only_caddy_reaches_the_socket():
    units = render.render_proxy_units(spec(), 20001)
    sock = directives(units["ripdep-hello.proxy.socket"])
    assert sock["ListenStream"] == ["/run/ripdep/hello.sock"] and sock["SocketMode"] == ["0660"]
    assert sock["SocketUser"] == ["root"] and sock["SocketGroup"] == ["caddy"]
    assert sock["PartOf"] == ["ripdep-hello.service"]
    svc = directives(units["ripdep-hello.proxy.service"])
    assert svc["JoinsNamespaceOf"] == ["ripdep-hello.service"] and svc["PrivateNetwork"] == ["yes"]
    # a request never starts the app, and is never left pending (a trigger loop): no dependency on it
    assert "Requisite" not in svc and "Requires" not in svc and "BindsTo" not in svc
    assert svc["PartOf"] == ["ripdep-hello.service"] and svc["After"] == ["ripdep-hello.service"]
    assert svc["ExecStart"] == ["/lib/systemd/systemd-socket-proxyd 127.0.0.1:20001"]
    assert svc["User"] == ["hello"]
    egress = directives(render.render_proxy_units(spec(network={"egress": ["192.0.2.10"]}), 20001)
                        ["ripdep-hello.proxy.service"])
    assert "JoinsNamespaceOf" not in egress and "PrivateNetwork" not in egress


def test_app_environment():
    env = render.app_environment(spec(env={"X": "1"}), 20005)
    assert env == {"PORT": "20005", "HOST": "127.0.0.1", "MOUNT_PATH": "/hello",
                   "DATABASE_URL": "postgresql:///hello?host=/run/postgresql", "X": "1"}
    assert "DATABASE_URL" not in render.app_environment(spec(database=False), 1)


def test_missing_template_fails_at_start(tmp_path, monkeypatch):
    monkeypatch.setenv("RIPDEP_TEMPLATES", str(tmp_path))
    with pytest.raises(PreconditionFailed, match="missing"):
        render.check_templates()


def test_undefined_template_variable_is_an_error(tmp_path, monkeypatch):
    root = Path(render.template_root())
    for f in render.TEMPLATE_FILES:
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_text((root / f).read_text())
    (tmp_path / "units/app.service.j2").write_text("{{ no_such_value }}")
    monkeypatch.setenv("RIPDEP_TEMPLATES", str(tmp_path))
    with pytest.raises(ValidationFailed, match="no_such_value"):
        render.render_unit(spec())


@pytest.mark.parametrize("line", ['ExecStart="+/usr/bin/python3" "app.py"', "ExecStart=+/bin/sh",
                                  'ExecStart="!!/bin/sh"', "ExecStartPre=-/bin/true", 'ExecStart=":x"',
                                  'ExecStart="@/bin/sh" "sh"'])
def test_the_exec_gate_refuses_a_prefixed_command_line_whatever_rendered_it(line):
    from ripdep.resources.unit import check_exec_lines

    check_exec_lines("x.service", 'ExecStart="/usr/bin/python3" "app.py"\n')  # control: accepted
    with pytest.raises(ValidationFailed, match="systemd prefix"):
        check_exec_lines("x.service", f"[Service]\n{line}\n")


def test_a_program_in_the_code_folder_is_verified_where_it_is_before_the_copy(tmp_path):
    from ripdep.context import Context
    from ripdep.resources.unit import verifiable
    from ripdep.state import AppState

    s = parse_manifest("hello", {"source": str(tmp_path), "start": ["./run.sh", "-p", "8000"]}, MANIFEST)
    text = render.render_unit(s)
    assert 'ExecStart="/srv/ripdep/hello/run.sh" "-p" "8000"' in text
    checked = verifiable(Context(s, None, AppState("hello")), text)  # type: ignore[arg-type]
    assert f'ExecStart="{tmp_path}/run.sh" "-p" "8000"' in checked
    assert checked.replace(str(tmp_path), "/srv/ripdep/hello") == text  # nothing else differs
