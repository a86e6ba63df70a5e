from pathlib import Path

import pytest

from ripdep.errors import BadInput
from ripdep.spec import load_manifest, parse_manifest

BASE = {"source": ".", "start": ["/usr/bin/python3", "app.py"]}
MANIFEST = Path("/srv/src/hello/ripdep.toml")


def parse(**overrides):
    data = {**BASE, **overrides}
    return parse_manifest("hello", data, MANIFEST)


def test_defaults():
    spec = parse()
    assert spec.source == Path("/srv/src/hello")
    assert spec.start == ("/usr/bin/python3", "app.py")
    assert spec.route.path == "/hello/" and spec.route.host is None
    assert spec.mount_path == "/hello"
    assert spec.health == "/"
    assert spec.database is True
    assert spec.profile == "strict"


def test_start_string_is_split_like_a_shell_without_running_one():
    assert parse(start="/usr/bin/python3 'my app.py' --x=1").start == ("/usr/bin/python3", "my app.py", "--x=1")


def test_host_route():
    spec = parse(route={"host": "shop.example.com", "tls": True})
    assert spec.route.host == "shop.example.com" and spec.route.tls and spec.mount_path == ""


@pytest.mark.parametrize("overrides, words", [
    ({"colour": "red"}, "unknown key 'colour'"),
    ({"route": {"path": "/x/", "port": 1}}, "unknown key 'route.port'"),
    ({"limits": {"memroy": "1G"}}, "unknown key 'limits.memroy'"),
    ({"database": "yes"}, "'database'"),
    ({"health": 5}, "'health'"),
    ({"start": 5}, "'start'"),
    ({"start": []}, "'start' is empty"),
    ({"start": ["/bin/x\nExecStartPre=/bin/evil"]}, "control characters"),
    ({"profile": "loose"}, "'profile'"),
    ({"database_locale": "C; DROP"}, "database_locale"),
    ({"database_locale": 1}, "database_locale"),
    ({"route": {"path": "/x/", "host": "a.b"}}, "not both"),
    ({"route": {"path": "/x"}}, "ending in '/'"),
    ({"route": {"path": "/"}}, "sub-path"),
    ({"route": {"path": "/x/;\nimport /etc/passwd"}}, "route.path"),
    ({"route": {"host": "a.b { }"}}, "route.host"),
    ({"route": {"tls": True}}, "needs route.host"),
    ({"env": {"A-B": "x"}}, "env.A-B"),
    ({"env": {"A": "x\x00y"}}, "NUL"),
    ({"env": {"A": True}}, "env.A"),
    ({"env": {"PORT": "1"}}, "set by ripdep"),
    ({"env": {"K": "1"}, "secrets": {"K": "generate"}}, "both in env and in secrets"),
    ({"secrets": {"K": "random"}}, "secrets.K"),
    ({"secrets": {"K": "ssm:relative"}}, "secrets.K"),
    ({"secrets": {"K": "ssm:/path/"}}, "secrets_from"),
    ({"secrets_from": ["ssm:/no-slash"]}, "secrets_from"),
    ({"limits": {"memory": "lots"}}, "limits.memory"),
    ({"limits": {"cpu": "50"}}, "limits.cpu"),
    ({"limits": {"tasks": 0}}, "limits.tasks"),
    ({"limits": {"tasks": True}}, "limits.tasks"),
])
def test_bad_manifests_name_the_key(overrides, words):
    with pytest.raises(BadInput) as e:
        parse(**overrides)
    assert words in e.value.message


def test_missing_required_keys():
    with pytest.raises(BadInput, match="source"):
        parse_manifest("hello", {"start": "x"}, MANIFEST)
    with pytest.raises(BadInput, match="start"):
        parse_manifest("hello", {"source": "."}, MANIFEST)


def test_integers_in_env_become_strings():
    assert parse(env={"WORKERS": 4}).env == {"WORKERS": "4"}


def test_load_manifest_errors(tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        load_manifest("hello", tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("source = \n")
    with pytest.raises(BadInput, match="not valid TOML"):
        load_manifest("hello", bad)
    with pytest.raises(BadInput, match="invalid app name"):
        load_manifest("Hello", bad)


def test_example_manifest_is_valid():
    root = Path(__file__).resolve().parents[2]
    spec = load_manifest("hello", root / "examples/hello/ripdep.toml")
    assert spec.source == root / "examples/hello"
    assert spec.secrets["SECRET_KEY"].kind == "generate"


def test_url_and_health_target_per_route_kind():
    path = parse(health="/healthz")
    assert path.url == "http://127.0.0.1/hello/"
    assert path.health_target(20001) == (80, "/hello/healthz", None)
    host = parse(health="/up", route={"host": "shop.example.com"})
    assert host.url == "http://shop.example.com/"
    assert host.health_target(20001) == (80, "/up", "shop.example.com")
    tls = parse(route={"host": "shop.example.com", "tls": True})
    assert tls.url == "https://shop.example.com/"
    assert tls.health_target(20001) == (20001, "/", None)
