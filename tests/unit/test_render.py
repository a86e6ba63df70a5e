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


def test_path_snippet():
    text = render.render_snippet(spec(), 20001)
    assert text.startswith("# managed by ripdep: app hello\n")
    assert "redir /hello /hello/ 308" in text
    assert "handle_path /hello/* {" in text
    assert "reverse_proxy 127.0.0.1:20001" in text
    assert text.count("{") == text.count("}")


def test_host_snippet_plain_http_unless_tls():
    assert "http://shop.example.com {" in render.render_snippet(spec(route={"host": "shop.example.com"}), 20001)
    tls = render.render_snippet(spec(route={"host": "shop.example.com", "tls": True}), 20001)
    assert "\nshop.example.com {" in tls


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
