"""A standing hostile-input suite for the manifest (issue 8).

Every manifest key (spec.TOP_KEYS and each table's sub-keys) gets every value in HOSTILE: wrong
types, empty and huge strings, control characters, newline injection, systemd prefixes and
specifiers, path traversal, IP literals, Unicode oddities. Each must either be refused with a
BadInput naming the key, or be accepted and render (unit, env file, Caddy snippet) without adding a
line, a directive, a section or a Caddy block that a clean manifest does not have. Pure: nothing
here touches the host.
"""

import inspect
import re
from collections import Counter
from pathlib import Path

import pytest

from ripdep import appconfig, render, spec
from ripdep.errors import BadInput

MANIFEST = Path("/srv/src/hello/ripdep.toml")
BASE = {"source": ".", "start": ["/usr/bin/python3", "app.py"]}

INJECTIONS = ["x\nExecStartPre=/bin/sh", "x\r\nExecStartPre=/bin/sh", "x\rUser=root", "x\n[Service]\nUser=root",
              "/x/\nimport /etc/passwd", "/x/ {\n}\n:80 {", "x\x00y", "x\u2028User=root", "x\x85User=root",
              "x\x0bUser=root", "x\x0cUser=root", "x\\\nUser=root",
              # shaped like a route path (a sub-path ending in '/'), so only the injection can refuse it
              "/a/\n}\nimport /etc/passwd\nhandle /x/", "/a/ {\n}\n:80 {\n/"]
HOSTILE = [
    # wrong types
    0, -1, 5, 2 ** 63, 2 ** 64, -2 ** 64, 1.5, float("nan"), float("inf"), True, False, [], [""], ["x", 5], [[]],
    {}, {"a": "b"}, {"": ""},
    # empty, blank, huge
    "", " ", "\t", "x" * 5000, "/" + "x" * 5000, "x" * 200_000,
    # control characters and injection
    "\x00", "\n", "\x1b[31mred", "\x7f", *INJECTIONS,
    # systemd: prefixes, specifiers, variables, quoting
    "+/bin/sh", "!/bin/sh", "!!/bin/sh", "@/bin/sh", "-/bin/sh", ":/bin/sh", "-+/bin/sh", "%n", "%%", "$HOME",
    "${PATH}", "`id`", '"', "'", "\\", ";", "&&", "|",
    # paths
    ".", "..", "/", "/a b/", "/a{/", "/a}/", "/a*/", "/a;/", "/a#/", "/a\t/", "/x/./", "/x/../", "/./", "//x",
    "../../../../etc", "/etc/ripdep", "/etc/ripdep/secrets", "/srv/ripdep", "/root", "/proc/self", "~root",
    # names, hosts, addresses
    "127.0.0.1", "[::1]", "::1", "localhost", "0.0.0.0", "*.example.com", "a.b {", "a.b:80", "http://a.b",
    "Example.com", "*", "root", "postgres",
    # values that look like the right kind
    "0", "-1", "1K", "99999999999999999999999T", "0%", "-50%", "generate\n", "ssm:", "ssm:/x/../y", "ssm:/x\n/",
    # Unicode oddities
    "\ufeff/x", "\u202e/x", "\u200b", "ｐｏｓｔｇｒｅｓ", "é", "\U0001f600",
]

# tables and their sub-keys; a key added to the manifest without a row here fails test_every_key_is_covered
TABLES = {"route": spec.ROUTE_KEYS, "limits": spec.LIMIT_KEYS, "backup": spec.BACKUP_KEYS,
          "network": getattr(spec, "NETWORK_KEYS", set()), "health": spec.HEALTH_KEYS,
          "releases": spec.RELEASES_KEYS}
FREE_TABLES = {"env", "secrets", "files", "processes", "cron"}  # keys chosen by the operator
SCALARS = spec.TOP_KEYS - set(TABLES) - FREE_TABLES | {"health"}  # health = "/path" or a [health] table
# the types each key takes: any other type must be refused
TYPES = {"source": str, "start": (str, list), "health": (str, dict), "database": bool, "database_locale": str,
         "profile": str, "secrets_from": list, "delivery": str, "route": dict, "limits": dict, "backup": dict,
         "network": dict, "env": dict, "secrets": dict, "route.path": str, "route.host": str, "route.tls": bool,
         "limits.memory": str, "limits.cpu": str, "limits.tasks": int, "backup.schedule": str, "backup.keep": int,
         "network.egress": list, "files": dict, "processes": dict, "cron": dict, "health.path": str, "health.method": str, "health.body": str,
         "health.headers": dict, "health.status": int, "health.contains": str, "release": (str, list),
         "releases": dict, "releases.keep": int, "releases.watch": int,
         "metrics": str}
KEYS = sorted(spec.TOP_KEYS) + sorted(f"{t}.{k}" for t in TABLES if t in spec.TOP_KEYS for k in TABLES[t])


def manifest(key: str, value) -> dict:
    if "." in key:
        table, sub = key.split(".", 1)
        return {**BASE, table: {sub: value}}
    return {**BASE, key: value}


def snippet(s: spec.AppSpec) -> str:
    # render_snippet(spec, port) before the per-app proxy socket, render_snippet(spec) after it
    if "port" in inspect.signature(render.render_snippet).parameters:
        return render.render_snippet(s, 20001)
    return render.render_snippet(s)


def unit(s: spec.AppSpec) -> str:
    return render.render_unit(s, credentials=tuple(s.secrets) if s.delivery == "credentials" else ())


DEPENDENCY = re.compile(r"(After|Before|Wants|Requires|PartOf|OnFailure|WantedBy|Unit)=([\w@.%-]+( [\w@.%-]+)*)")


def directives(text: str) -> Counter:
    """How often each directive name and section occurs; refuses lines a unit file cannot have, and
    dependency lines with anything but unit names in them (a comment glued on by a template)."""
    out = Counter()
    for line in text.split("\n"):
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"(\[[A-Za-z]+\])|([A-Za-z]+)=.*", line)
        assert match, f"not a unit file line: {line!r}"
        if match.group(2) in ("After", "Before", "Wants", "Requires", "PartOf", "OnFailure", "WantedBy", "Unit"):
            assert DEPENDENCY.fullmatch(line), f"not a list of unit names: {line!r}"
        out[match.group(1) or match.group(2)] += 1
    return out


def shape(text: str) -> list[str]:
    """A Caddy snippet's structure: per line its indentation and number of words, and every brace."""
    return [re.sub(r"[^\s{}]+", "w", line) for line in text.split("\n")]


CLEAN = [{"processes": {"w": {"start": ["bin/w"], "count": 2, "limits": {"memory": "64M"}}},
          "cron": {"c": {"schedule": "daily", "run": ["bin/c"]}}}, {"profile": "jit"}, {"database": False}, {"limits": {"memory": "64M", "cpu": "50%", "tasks": 10}},
         {"secrets": {"A": "generate", "B": "stored"}, "delivery": "credentials"}, {"route": {"host": "a.example.com"}},
         {"route": {"host": "a.example.com", "tls": True}}, {"backup": {"schedule": "daily", "keep": 3}}]
if "network" in spec.TOP_KEYS:
    CLEAN.append({"network": {"egress": ["192.0.2.10"]}})
CLEAN_SPECS = [spec.parse_manifest("hello", {**BASE, **c}, MANIFEST) for c in CLEAN]
MOST = Counter()  # the most of each directive a clean manifest renders
EXTRA_MOST = Counter()  # the same for a [processes] or [cron] unit
for _s in CLEAN_SPECS:
    MOST |= directives(unit(_s))
    for _text in {**render.render_process_units(_s), **render.render_job_units(_s)}.values():
        EXTRA_MOST |= directives(_text)
SNIPPET_SHAPES = {repr(shape(snippet(s))) for s in CLEAN_SPECS}


def check_rendering(s: spec.AppSpec) -> None:
    """An accepted manifest renders nothing a clean one does not have."""
    text = unit(s)
    extra = dict(directives(text) - MOST)
    assert not extra, f"unit has directives no clean manifest has: {extra}"
    breaks = re.findall(r"[\x00\r\x0b\x0c\x85\u2028\u2029]", text)
    assert not breaks, f"unit has line breaks besides \\n: {breaks}"
    exec_start = [line for line in text.split("\n") if line.startswith("ExecStart=")]
    quoted = len(exec_start) == 1 and exec_start[0].startswith('ExecStart="')  # systemd reads no prefix then
    assert quoted and exec_start[0][len('ExecStart="'):][:1] not in spec.SYSTEMD_PREFIXES, f"{exec_start}"
    for name, text in {**render.render_process_units(s), **render.render_job_units(s)}.items():
        extra = dict(directives(text) - EXTRA_MOST)
        assert not extra, f"{name} has directives no clean manifest has: {extra}"
        exec_start = [line for line in text.split("\n") if line.startswith("ExecStart=")]
        if name.endswith(".timer"):
            assert not exec_start and "Unit=ripdep-hello.job." in text, name
            continue
        quoted = len(exec_start) == 1 and exec_start[0].startswith('ExecStart="')
        assert quoted and exec_start[0][len('ExecStart="'):][:1] not in spec.SYSTEMD_PREFIXES, f"{name}: {exec_start}"
    caddy = snippet(s)
    same_shape = repr(shape(caddy)) in SNIPPET_SHAPES
    assert same_shape, f"snippet is shaped like no clean one: {caddy!r}"
    env = render.app_environment(s, 20001)
    secrets = {k: "v" for k in s.secrets}
    read_back = render.parse_env_file(render.render_env_file(s.name, env, secrets)) == {**env, **secrets}
    assert read_back, "env file does not read back as written"
    # the health check's request line and Host header (host/http.py): one token each, printable ASCII
    request = [s.mount_path + s.health.path, s.route.host or "127.0.0.1", s.health.method,
               *(k for k, _ in s.health.headers)]
    plain = all(re.fullmatch(r"[!-~]+", part) for part in request)
    assert plain, f"health check request parts {request!r}"
    header_values = [v for _, v in s.health.headers]
    assert not any(re.search(r"[\x00-\x1f\x7f\x85\u2028\u2029]", v) for v in header_values), header_values


def outcome(key: str, data: dict) -> str | None:
    """None if refused correctly or accepted harmlessly, else what went wrong."""
    try:
        s = spec.parse_manifest("hello", data, MANIFEST)
    except BadInput as e:
        if not re.search(rf"'{re.escape(key)}['.]", e.message):  # 'route.path', or 'env.NAME' for key env
            return f"refused without naming {key!r}: {e.message}"
        return None
    except Exception as e:  # anything but BadInput is a crash the operator cannot act on
        return f"crashed: {type(e).__name__}: {e}"
    try:
        check_rendering(s)
    except AssertionError as e:
        return f"accepted, and the rendering is wrong: {str(e).split(chr(10) + 'assert ')[0]}"
    return None


def describe(value) -> str:
    text = repr(value)
    return text if len(text) < 60 else text[:57] + "..."


def test_every_key_is_covered():
    assert SCALARS | set(TABLES) | FREE_TABLES >= spec.TOP_KEYS
    assert set(KEYS) - FREE_TABLES <= set(TYPES), "give every new key its type in TYPES"


@pytest.mark.parametrize("key", KEYS)
def test_hostile_values(key):
    problems = [f"{key} = {describe(v)}: {why}" for v in HOSTILE if (why := outcome(key, manifest(key, v)))]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("key", [k for k in KEYS if k in TYPES])
def test_wrong_types_are_refused(key):
    want = TYPES[key]
    wrong = [v for v in HOSTILE if not isinstance(v, want) or isinstance(v, bool) and want is not bool]
    accepted = []
    for value in wrong:
        try:
            spec.parse_manifest("hello", manifest(key, value), MANIFEST)
            accepted.append(describe(value))
        except BadInput:
            pass
    assert not accepted, f"{key} accepted values of the wrong type: {accepted}"


LISTS = {"start": str, "secrets_from": str, "network.egress": str, "release": str}  # list keys and the type of their items


@pytest.mark.parametrize("key", [k for k in LISTS if k in KEYS])
def test_hostile_list_items(key):
    problems = []
    for value in HOSTILE:
        if why := outcome(key, manifest(key, [value])):
            problems.append(f"{key} = [{describe(value)}]: {why}")
        if not isinstance(value, LISTS[key]) and why is None:
            try:
                spec.parse_manifest("hello", manifest(key, [value]), MANIFEST)
                problems.append(f"{key} = [{describe(value)}]: an item of the wrong type was accepted")
            except BadInput:
                pass
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("table", sorted(FREE_TABLES & spec.TOP_KEYS))
def test_hostile_keys_and_values_in_free_tables(table):
    good_value = {"env": "v", "secrets": "generate", "files": "t.j2", "processes": ["bin/w"],
                  "cron": {"schedule": "daily", "run": ["bin/c"]}}[table]
    problems = []
    for value in HOSTILE:
        if isinstance(value, str):  # as a key
            if why := outcome(table, {**BASE, table: {value: good_value}}):
                problems.append(f"{table} key {describe(value)}: {why}")
        if why := outcome(table, {**BASE, table: {"K": value}}):  # as a value
            problems.append(f"{table}.K = {describe(value)}: {why}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("value", [v for v in HOSTILE if isinstance(v, str)])
def test_hostile_start_words_after_the_program(value):
    assert outcome("start", {**BASE, "start": ["/usr/bin/python3", value]}) is None


@pytest.mark.parametrize("value", [v for v in HOSTILE if isinstance(v, str)])
def test_hostile_config_set_assignments(value):
    """`ripdep config set APP KEY=VALUE`: refused, or the env file holds exactly that value."""
    for pair in (f"K={value}", f"{value}=v"):
        try:
            parsed = appconfig.parse_assignments((pair,))
        except BadInput:
            continue
        text = render.render_env_file("hello", parsed, {})
        assert render.parse_env_file(text) == parsed


def test_injections_never_reach_a_rendered_file():
    """The classic payloads, in every key: what follows the line break never starts a line of the
    unit or the snippet (a start string may split them into words: "x" "ExecStartPre=/bin/sh")."""
    for key in KEYS:
        for payload in INJECTIONS:
            try:
                s = spec.parse_manifest("hello", manifest(key, payload), MANIFEST)
            except BadInput:
                continue
            injected = [part for part in re.split(r"[\x00\n\r\x0b\x0c\x85\u2028\\]+", payload)[1:] if part]
            for render_it in (unit, snippet):
                clean = [line.strip() for line in render_it(CLEAN_SPECS[0]).split("\n")]
                lines = [line.strip() for line in render_it(s).split("\n")]
                for part in injected:  # "[Service]" is in every unit, once
                    starting = sum(line.startswith(part) for line in lines)
                    assert starting <= sum(line.startswith(part) for line in clean), (key, payload, part)


def test_the_checks_catch_an_injection():
    s = spec.parse_manifest("hello", BASE, MANIFEST)
    check_rendering(s)
    assert directives(unit(s) + "ExecStartPre=/bin/sh\n") - MOST == Counter({"ExecStartPre": 1})
    assert directives(unit(s) + "User=root\n") - MOST == Counter({"User": 1})
    assert repr(shape(snippet(s) + "}\n:80 {\n")) not in SNIPPET_SHAPES
    assert repr(shape(snippet(s).replace("/hello/", "/a b/"))) not in SNIPPET_SHAPES
