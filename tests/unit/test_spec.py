import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from ripdep import spec as spec_module
from ripdep.errors import BadInput
from ripdep.spec import load_manifest, parse_manifest

ROOT = Path(__file__).resolve().parents[2]

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
    assert spec.health.path == "/" and spec.health.method == "GET"
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
    assert path.health_target("/run/ripdep/hello.sock") == (80, "/hello/healthz", None)
    host = parse(health="/up", route={"host": "shop.example.com"})
    assert host.url == "http://shop.example.com/"
    assert host.health_target("/run/ripdep/hello.sock") == (80, "/up", "shop.example.com")
    tls = parse(route={"host": "shop.example.com", "tls": True})
    assert tls.url == "https://shop.example.com/"
    assert tls.health_target("/run/ripdep/hello.sock") == ("/run/ripdep/hello.sock", "/", None)


# --- hostile values (issue 8) -------------------------------------------------------------------

@pytest.mark.parametrize("start", [["+python3", "app.py"], ["!/bin/sh"], ["!!/bin/sh"], ["@/bin/sh", "sh"],
                                   ["-/bin/false"], [":/bin/sh"], ["-+/bin/sh"], ["@-/bin/sh"], "+/usr/bin/id",
                                   "'+/usr/bin/id' x"])
def test_systemd_exec_prefixes_are_refused(start):
    with pytest.raises(BadInput, match=r"manifest key 'start'.*systemd.*prefix"):
        parse(start=start)


def test_prefix_characters_later_in_the_command_are_fine():
    assert parse(start=["/usr/bin/env", "-i", "+x", "@y", ":z"]).start[1:] == ("-i", "+x", "@y", ":z")
    assert parse(start=["./run-+.sh"]).start == ("./run-+.sh",)


def test_start_sizes():
    assert parse(start=["/bin/app", "x" * 4096])
    with pytest.raises(BadInput, match="'start'.*longer than 4096"):
        parse(start=["/bin/app", "x" * 4097])
    assert parse(start=["/bin/app"] + ["x" * 4000] * 7)
    with pytest.raises(BadInput, match="'start'.*command line"):
        parse(start=["/bin/app"] + ["x" * 4000] * 9)


def test_env_sizes():
    assert parse(env={"A": "x" * 32768}).env["A"] == "x" * 32768
    with pytest.raises(BadInput, match="env.A.*bytes"):
        parse(env={"A": "x" * 32769})
    assert parse(env={f"K{i}": "x" * 30000 for i in range(8)})
    with pytest.raises(BadInput, match="manifest key 'env'.*bytes in all"):
        parse(env={f"K{i}": "x" * 30000 for i in range(9)})


@pytest.mark.parametrize("memory", ["1K", "16383K", "15M", "1", "16777215"])
def test_memory_below_the_minimum_is_refused(memory):
    with pytest.raises(BadInput, match="limits.memory.*minimum"):
        parse(limits={"memory": memory})


@pytest.mark.parametrize("memory", ["16M", "16384K", "16777216", "1G", "2T", "infinity"])
def test_sane_memory_limits_pass(memory):
    assert parse(limits={"memory": memory}).limits.memory == memory


def test_memory_beyond_systemd_is_refused():
    with pytest.raises(BadInput, match="limits.memory"):
        parse(limits={"memory": "99999999999999999999T"})
    with pytest.raises(BadInput, match="limits.memory"):
        parse(limits={"memory": "1" * 5000})


@pytest.mark.parametrize("overrides, key", [
    ({"route": {"path": "/x/./"}}, "route.path"),
    ({"route": {"path": "/x/../y/"}}, "route.path"),
    ({"health": "/./up"}, "health"),
    ({"health": "/a/.."}, "health"),
])
def test_dot_segments_are_refused(overrides, key):
    with pytest.raises(BadInput, match=f"manifest key '{key}'"):
        parse(**overrides)


@pytest.mark.parametrize("overrides, key", [
    ({"health": ""}, "health"),
    ({"profile": ""}, "profile"),
    ({"route": {"path": ""}}, "route.path"),
    ({"route": {"host": ""}}, "route.host"),
    ({"route": {"path": "", "host": "a.example.com"}}, "route.path"),
    ({"database_locale": ""}, "database_locale"),
    ({"delivery": ""}, "delivery"),
    ({"limits": {"memory": ""}}, "limits.memory"),
    ({"limits": {"cpu": ""}}, "limits.cpu"),
    ({"backup": {"schedule": ""}}, "backup.schedule"),
])
def test_empty_strings_are_errors_not_defaults(overrides, key):
    with pytest.raises(BadInput, match=f"manifest key '{key}' is empty"):
        parse(**overrides)


def test_empty_env_value_is_still_a_value():
    assert parse(env={"EMPTY": ""}).env == {"EMPTY": ""}


@pytest.mark.parametrize("host", ["127.0.0.1", "10.0.0.1", "[::1]", "localhost", "127.1"])
def test_ip_and_localhost_host_routes_are_refused(host):
    with pytest.raises(BadInput, match="route.host.*IP address"):
        parse(route={"host": host})


@pytest.mark.parametrize("source", [
    "/etc/ripdep", "/etc/ripdep/secrets/other", "/var/lib/ripdep", "/var/lib/ripdep/apps/other", "/srv/ripdep",
    "/srv/ripdep/other", "/var/backups/ripdep", "/run/ripdep", "/", "/etc", "/etc/ssh", "/root", "/root/.ssh",
    "/root/.aws", "/root/.config/app", "/home/deploy", "/home/deploy/.ssh", "/srv/src/.git", "/proc", "/proc/1",
    "/sys", "/dev", "/boot", "/run", "/var/lib/postgresql", "/var", "/srv", "/home", "/usr", "/tmp",
    "../../../../../../etc", "/srv/src/../../etc/ripdep", "/var/log",
])
def test_sources_in_ripdeps_or_the_systems_folders_are_refused(source):
    with pytest.raises(BadInput, match="manifest key 'source'"):
        parse(source=source)


@pytest.mark.parametrize("source, want", [
    (".", "/srv/src/hello"), ("/srv/src/hello", "/srv/src/hello"), ("/home/deploy/app", "/home/deploy/app"),
    ("/opt/shop", "/opt/shop"), ("/srv/ripdep-src/app", "/srv/ripdep-src/app"), ("/tmp/build/app", "/tmp/build/app"),
    ("/root/ripdep/examples/hello", "/root/ripdep/examples/hello"),  # a checkout in root's home
])
def test_ordinary_sources_pass(source, want):
    assert parse(source=source).source == Path(want)


def test_a_link_cannot_hide_a_forbidden_source(tmp_path):
    (tmp_path / "code").symlink_to("/etc/ripdep")
    with pytest.raises(BadInput, match="source.*inside /etc"):
        parse_manifest("hello", {**BASE, "source": "code"}, tmp_path / "ripdep.toml")
    (tmp_path / "real").mkdir()
    (tmp_path / "fine").symlink_to(tmp_path / "real")
    assert parse_manifest("hello", {**BASE, "source": "fine"}, tmp_path / "ripdep.toml").source == tmp_path / "real"


def write_manifest(tmp_path, text):
    path = tmp_path / "ripdep.toml"
    path.write_text(text)
    return path


def test_deep_nesting_is_bad_input_not_a_crash(tmp_path):
    for text in ["a = " + "[" * 5000 + "]" * 5000, "a = " + "{b=" * 5000 + "1" + "}" * 5000]:
        with pytest.raises(BadInput, match="too deeply"):
            load_manifest("hello", write_manifest(tmp_path, text))


def test_long_dotted_keys_are_refused_before_parsing(tmp_path):
    # tomllib needs time and memory quadratic in the number of parts: 100,000 would take gigabytes
    for text in [".".join(["a"] * 100_000) + " = 1", "[" + " . ".join(['"a"'] * 100_000) + "]"]:
        with pytest.raises(BadInput, match="dotted key"):
            load_manifest("hello", write_manifest(tmp_path, text))
    text = 'source = "."\nstart = "/bin/app"\nroute.path = "/x/"\n[env]\nVALUE = "' + "a." * 200 + '"\n'
    assert load_manifest("hello", write_manifest(tmp_path, text)).env["VALUE"] == "a." * 200


def test_huge_integers_are_bad_input(tmp_path):
    with pytest.raises(BadInput, match="not valid TOML"):
        load_manifest("hello", write_manifest(tmp_path, "a = " + "1" * 5000))
    with pytest.raises(BadInput, match="limits.tasks"):
        parse(limits={"tasks": 2 ** 64})
    with pytest.raises(BadInput, match="env.N"):
        parse(env={"N": 10 ** 5000})


def test_manifest_size_limit(tmp_path):
    text = 'source = "."\nstart = "/bin/app"\n'
    assert load_manifest("hello", write_manifest(tmp_path, text + "#" * (1024 * 1024 - len(text) - 1) + "\n"))
    with pytest.raises(BadInput, match="larger than 1024 KiB"):
        load_manifest("hello", write_manifest(tmp_path, text + "#" * (1024 * 1024) + "\n"))


def test_manifest_that_is_not_a_regular_file_is_refused_without_blocking(tmp_path):
    import os

    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)  # nothing writes to it: reading it would block forever
    for path in (fifo, tmp_path, Path("/dev/null"), Path("/dev/zero")):
        with pytest.raises(BadInput, match="not a regular file"):
            load_manifest("hello", path)


def test_fifo_swapped_in_after_the_check_is_refused(tmp_path, monkeypatch):
    import os

    from ripdep import spec

    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    regular = os.stat(write_manifest(tmp_path, ""))
    monkeypatch.setattr(spec.os, "stat", lambda path: regular)  # the stat saw a file, the open finds a FIFO
    with pytest.raises(BadInput, match="not a regular file"):
        load_manifest("hello", fifo)


def doc_key_table() -> list[str]:
    """The first column of docs/manifest.md's key table (the one whose header is "| key | type |...")."""
    lines = (ROOT / "docs/manifest.md").read_text().splitlines()
    start = lines.index("| key | type | default | meaning |")
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(re.fullmatch(r"\| `([^`]+)` \|.*", line).group(1))
    return rows


def test_docs_key_table_has_a_row_for_every_manifest_key_and_no_other():
    keys = (spec_module.SCALAR_KEYS | {f"{t}.{k}" for t, sub in spec_module.TABLE_KEYS.items() for k in sub}
            | {f"{t}.KEY" for t in spec_module.FREE_TABLES})
    rows = doc_key_table()
    assert len(rows) == len(set(rows)), "a key has two rows in docs/manifest.md"
    undocumented, unknown = sorted(keys - set(rows)), sorted(set(rows) - keys)
    assert not undocumented, f"give these keys a row in docs/manifest.md's table: {undocumented}"
    assert not unknown, f"docs/manifest.md documents keys that ripdep/spec.py does not know: {unknown}"


def test_manifest_keys_match_the_specs_fields():
    # every key lands in a field of the same name, except [network] egress, which becomes AppSpec.egress
    fields = {f.name for f in dataclasses.fields(spec_module.AppSpec)} - {"name", "manifest_path", "egress"}
    assert fields == spec_module.TOP_KEYS - {"network"}
    for table, cls in [("route", spec_module.Route), ("limits", spec_module.Limits), ("backup", spec_module.Backup)]:
        assert {f.name for f in dataclasses.fields(cls)} == spec_module.TABLE_KEYS[table], table
    assert spec_module.TOP_KEYS == spec_module.SCALAR_KEYS | set(spec_module.TABLE_KEYS) | spec_module.FREE_TABLES


def test_docs_example_manifest_is_valid():
    text = (ROOT / "docs/manifest.md").read_text()
    example = re.search(r"```toml\n(.*?)```", text, re.S).group(1)
    spec = parse_manifest("hello", tomllib.loads(example), MANIFEST)
    assert spec.route.path == "/shop/" and spec.limits.tasks == 64 and spec.egress == ("192.0.2.10/32",)
