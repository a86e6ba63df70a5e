"""A backup is untrusted input (it may come from another host): what restore checks before it changes
anything. Pure file checks on a backup folder made here; the restore itself is in
tests/integration/test_backup.py and test_two_hosts.py."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from ripdep import backup
from ripdep.errors import BackupInvalid

ME = os.getuid()
PROBE = Path(__file__).resolve().parents[1] / "fixtures" / "probe"


def make_backup(folder: Path, app: str = "moved", manifest: str | None = None, facts: str | None = None,
                secrets: dict[str, bytes] | None = None, members: list[tarfile.TarInfo] | None = None) -> Path:
    folder.mkdir(mode=0o700)
    (folder / "manifest.toml").write_text(manifest if manifest is not None else
                                          f'source = "{PROBE}"\nstart = ["/usr/bin/python3", "app.py"]\n')
    (folder / "backup.toml").write_text(facts if facts is not None else
                                        f'app = "{app}"\ndatabase = false\ndatabase_locale = ""\n')
    (folder / "secrets").mkdir(mode=0o700)
    for key, value in (secrets or {"SECRET_KEY": b"s3cret"}).items():
        (folder / "secrets" / key).write_bytes(value)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for m in members or [tarfile.TarInfo("state")]:
            if m.name == "state":
                m.type = tarfile.DIRTYPE
            tar.addfile(m, io.BytesIO(b"") if m.isfile() else None)
    (folder / "state.tar").write_bytes(buf.getvalue())
    seal(folder)
    return folder


def seal(folder: Path) -> None:
    """SHA256SUMS over every file, then root-like modes (0600 files, 0700 folders)."""
    lines = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != backup.SUMS):
        lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.relative_to(folder)}\n")
    (folder / backup.SUMS).write_text("".join(lines))
    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, 0o700 if path.is_dir() else 0o600)


def test_a_sound_backup_passes(tmp_path):
    folder = make_backup(tmp_path / "b")
    assert backup.check_contents(folder, "moved", owner=ME) == []
    assert backup.check_manifest(folder, "moved").name == "moved"


def test_another_apps_backup_is_refused(tmp_path):
    folder = make_backup(tmp_path / "b", app="other")
    assert "this is a backup of app 'other', not of 'moved'" in backup.check_contents(folder, "moved", owner=ME)


@pytest.mark.parametrize("mode", [0o620, 0o602])
def test_a_file_others_may_write_is_refused(tmp_path, mode):
    folder = make_backup(tmp_path / "b")
    os.chmod(folder / "db.dump" if (folder / "db.dump").exists() else folder / "manifest.toml", mode)
    assert backup.check_contents(folder, "moved", owner=ME) == [
        "manifest.toml: is writable by group or others (chmod -R go-w it)"]


def test_a_folder_others_may_write_is_refused(tmp_path):
    folder = make_backup(tmp_path / "b")
    os.chmod(folder / "secrets", 0o777)
    assert backup.check_contents(folder, "moved", owner=ME) == [
        "secrets: is writable by group or others (chmod -R go-w it)"]


def test_a_backup_owned_by_someone_else_is_refused(tmp_path):
    folder = make_backup(tmp_path / "b")
    problems = backup.check_contents(folder, "moved", owner=ME + 1)
    assert problems and all("not root" in p for p in problems)


def test_links_and_fifos_in_the_folder_are_refused(tmp_path):
    folder = make_backup(tmp_path / "b")
    (folder / "secrets" / "SECRET_KEY").unlink()
    os.symlink("/etc/shadow", folder / "secrets" / "SECRET_KEY")
    os.mkfifo(folder / "fifo", 0o600)
    problems = backup.check_contents(folder, "moved", owner=ME)
    assert "secrets/SECRET_KEY: is a symbolic link" in problems
    assert "fifo: is not a regular file or folder" in problems
    link = tmp_path / "link"
    os.symlink(folder, link)
    assert backup.check_contents(link, "moved", owner=ME) == [f"{link}: is a symbolic link"]


def test_a_changed_byte_is_refused(tmp_path):
    folder = make_backup(tmp_path / "b")
    (folder / "manifest.toml").write_text((folder / "manifest.toml").read_text().replace("app.py", "evil"))
    assert backup.check_contents(folder, "moved", owner=ME) == ["manifest.toml: checksum mismatch"]


@pytest.mark.parametrize("value, problem", [
    (b"a\x00b", "contains a NUL character"),
    (b"\xff\xfe", "not valid UTF-8"),
    (b"x" * (32 * 1024 + 1), "more than 32768"),
])
def test_secret_values_an_environment_cannot_hold_are_refused(tmp_path, value, problem):
    folder = make_backup(tmp_path / "b", secrets={"TOKEN": value})
    problems = backup.check_contents(folder, "moved", owner=ME)
    assert len(problems) == 1 and problem in problems[0]


def test_secret_names_that_are_not_variable_names_are_refused(tmp_path):
    folder = make_backup(tmp_path / "b", secrets={"LD_PRELOAD=x": b"1"})
    assert any("secret file" in p for p in backup.check_contents(folder, "moved", owner=ME))


def test_a_locale_that_is_not_a_locale_name_is_refused(tmp_path):
    facts = 'app = "moved"\ndatabase = false\ndatabase_locale = "C\' TEMPLATE x; --"\n'
    folder = make_backup(tmp_path / "b", facts=facts)
    assert any("database_locale" in p for p in backup.check_contents(folder, "moved", owner=ME))


def test_a_database_without_its_dump_is_refused(tmp_path):
    folder = make_backup(tmp_path / "b", facts='app = "moved"\ndatabase = true\n')
    assert "backup.toml says the app has a database, but db.dump is missing" in \
        backup.check_contents(folder, "moved", owner=ME)


def test_state_tar_members_outside_state_are_refused(tmp_path):
    evil = tarfile.TarInfo("state/../../etc/cron.d/x")
    folder = make_backup(tmp_path / "b", members=[tarfile.TarInfo("state"), evil])
    assert any("unsafe path" in p for p in backup.check_contents(folder, "moved", owner=ME))


@pytest.mark.parametrize("manifest, problem", [
    ('source = "."\nstart = ["/usr/bin/python3", "app.py"]\n', "is relative"),
    ('source = "/etc"\nstart = ["/usr/bin/python3", "app.py"]\n', "source"),
    (f'source = "{PROBE}"\nstart = ["+/bin/sh", "-c", "id"]\n', "ExecStart= prefix"),
    (f'source = "{PROBE}"\nstart = ["/usr/bin/python3"]\n[env]\nPORT = "1"\n', "PORT"),
    (f'source = "{PROBE}"\nstart = ["/usr/bin/python3"]\n[route]\nhost = "localhost"\n', "route"),
    ('this is = not toml', "not valid TOML"),
])
def test_a_hostile_manifest_in_a_backup_is_refused_like_deploy_refuses_it(tmp_path, manifest, problem):
    folder = make_backup(tmp_path / "b", manifest=manifest)
    assert backup.check_contents(folder, "moved", owner=ME) == []  # intact: only its content is refused
    with pytest.raises(BackupInvalid) as e:
        backup.check_manifest(folder, "moved")
    assert e.value.message.startswith("the manifest in backup b is refused: ")
    assert problem in e.value.message
