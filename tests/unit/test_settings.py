"""Host settings (/etc/ripdep/ripdep.toml): one definition (the fields of HostConfig) drives the
parser, the checks, the defaults, DEFAULT_TEXT and the table in docs/host-config.md."""

import dataclasses
import tomllib
from pathlib import Path

import pytest

from ripdep import hostconfig
from ripdep.errors import BadInput, PreconditionFailed
from ripdep.hostconfig import DEFAULT_TEXT, HostConfig, load_host_config, parse_host_config
from ripdep.paths import Paths

ROOT = Path(__file__).resolve().parents[2]
WHERE = "/etc/ripdep/ripdep.toml"


def parse(**data):
    return parse_host_config(data, WHERE)


def test_docs_table_is_generated_from_the_settings():
    doc = (ROOT / "docs/host-config.md").read_text()
    assert hostconfig.markdown_table() in doc, (
        "docs/host-config.md's table differs from the settings in ripdep/hostconfig.py; regenerate it with:\n"
        "    python3 -m ripdep.hostconfig --markdown\n\n" + hostconfig.markdown_table())


def test_default_text_parses_to_the_defaults():
    assert tomllib.loads(DEFAULT_TEXT) == {s.name: s.default for s in hostconfig.SETTINGS}
    assert parse(**tomllib.loads(DEFAULT_TEXT)) == HostConfig()


def test_default_text_keeps_the_lines_tools_edit():
    # tests/integration/test_backup.py turns S3 copies on by replacing this line
    assert '\ns3_bucket = ""\n' in DEFAULT_TEXT
    assert all(len(line) <= 100 for line in DEFAULT_TEXT.splitlines())


def test_every_setting_is_documented_and_its_default_passes_its_check():
    for s in hostconfig.SETTINGS:
        assert s.metadata["doc"] and "|" not in s.metadata["doc"], s.name
        assert type(s.default) in hostconfig.TYPE_NAMES, s.name
        check = s.metadata["check"]
        assert check is None or check(s.default) is None, s.name


def test_attributes_others_use_are_kept():
    host = HostConfig()
    assert (host.port_min, host.port_max, host.caddy_path_site, host.health_timeout) == (20000, 29999, ":80", 30)
    assert (host.backup_keep, host.backup_stale_after, host.destroy_backup_max_age) == (7, 93600, 900)
    assert (host.s3_bucket, host.s3_prefix, host.s3_region, host.s3_endpoint) == ("", "ripdep", "", "")
    assert (host.ssm_region, host.ssm_endpoint) == ("", "")
    with pytest.raises(dataclasses.FrozenInstanceError):
        host.port_min = 1  # type: ignore[misc]


def test_values_override_the_defaults():
    host = parse(port_min=30000, port_max=30010, s3_bucket="b", caddy_path_site="localhost:80, example.com")
    assert (host.port_min, host.port_max, host.s3_bucket, host.health_timeout) == (30000, 30010, "b", 30)
    assert host.caddy_path_site == "localhost:80, example.com"


@pytest.mark.parametrize("data, words", [
    ({"colour": "red"}, "unknown key 'colour'"),
    ({"port_min": "20000"}, "'port_min' must be int"),
    ({"port_min": True}, "'port_min' must be int"),
    ({"health_timeout": 1.5}, "'health_timeout' must be int"),
    ({"s3_bucket": 1}, "'s3_bucket' must be str"),
    ({"port_min": 80}, "need 1024 < port_min <= port_max < 65536"),
    ({"port_min": 30000, "port_max": 29999}, "need 1024 < port_min <= port_max < 65536"),
    ({"port_max": 65536}, "need 1024 < port_min <= port_max < 65536"),
    ({"health_timeout": 0}, "'health_timeout' is 0"),
    ({"backup_keep": 0}, "'backup_keep' is 0, out of range 1..1000"),
    ({"backup_keep": -3}, "'backup_keep' is -3"),
    ({"backup_stale_after": -1}, "'backup_stale_after'"),
    ({"destroy_backup_max_age": 0}, "'destroy_backup_max_age'"),
])
def test_bad_values_are_refused_naming_the_key(data, words):
    with pytest.raises(BadInput) as e:
        parse(**data)
    assert words in e.value.message and WHERE in e.value.message


@pytest.mark.parametrize("site", [":80", "localhost:80", "http://example.com", "a.example.com, b.example.com",
                                  "a.example.com,b.example.com", "[::1]:80", "*.example.com", "http://127.0.0.1:8080"])
def test_site_addresses(site):
    assert parse(caddy_path_site=site).caddy_path_site == site


@pytest.mark.parametrize("site", ["", " ", ":80 ", " :80", ":80\nimport /etc/passwd", ":80 {", "}", "{$SITE}",
                                  ":80 # x", '":80"', ":80\t", ":80\x00", ":80\r", "a\u2028b", ":80;", "a  b",
                                  "x" * 1001])
def test_site_addresses_that_could_break_the_caddyfile_are_refused(site):
    with pytest.raises(BadInput) as e:
        parse(caddy_path_site=site)
    assert "'caddy_path_site'" in e.value.message


def test_load_reads_the_file(tmp_path):
    paths = Paths(root=tmp_path)
    paths.host_config.parent.mkdir(parents=True)
    paths.host_config.write_text("health_timeout = 60\n")
    assert load_host_config(paths) == HostConfig(health_timeout=60)
    paths.host_config.write_text("health_timeout = \n")
    with pytest.raises(BadInput, match="not valid TOML"):
        load_host_config(paths)
    paths.host_config.write_text("colour = 1\n")
    with pytest.raises(BadInput, match=f"{paths.host_config}: unknown key 'colour'"):
        load_host_config(paths)
    paths.host_config.unlink()
    with pytest.raises(PreconditionFailed, match="not initialised"):
        load_host_config(paths)
