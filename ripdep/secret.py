"""Secret values: a type that never shows itself, and the root-only store they live in.

/etc/ripdep/secrets/NAME/ (root 0700) holds one 0600 file per secret, named by its variable name:
the only store; the env file is rendered from it.
"""

from __future__ import annotations

import errno
import os
import secrets as csprng
import stat
from pathlib import Path

from ripdep import names
from ripdep.errors import Conflict
from ripdep.host import fs

MASK = "********"


class Secret:
    """A secret value; str(), repr() and format() all give the mask, .reveal() the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, format_spec: str) -> str:  # f"{secret}" and format() mask it too
        return MASK

    def __eq__(self, other) -> bool:
        return isinstance(other, Secret) and csprng.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)


def generate() -> Secret:
    return Secret(csprng.token_urlsafe(32))


# Every file operation in the store goes through a descriptor of the app's folder opened without
# following links, with names checked by the env-key rule: a name from a user ("../../ripdep.toml",
# "/root/x") or a link planted in the store can never make root read, write or delete elsewhere.
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def check_name(name: str, where: str = "secret name") -> str:
    return names.check_env_key(name, where)


def _open_store(folder: Path, create: bool = False) -> int | None:
    """A descriptor of the app's store folder (None if absent), refusing a link or a file there;
    with create, made root 0700 first."""
    if create:
        fs.ensure_dir(folder.parent, mode=0o700)
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            pass
    try:
        dfd = os.open(folder, _DIR_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise Conflict(f"{folder} is a link or a file, not the secrets folder ripdep made",
                           hint="nothing was read or changed; remove it and deploy again") from None
        raise
    if create:
        st = os.fstat(dfd)
        if st.st_mode & 0o7777 != 0o700 or (st.st_uid, st.st_gid) != (0, 0):
            os.fchmod(dfd, 0o700)
            os.fchown(dfd, 0, 0)
    return dfd


def _read(dfd: int, folder: Path, name: str) -> Secret | None:
    try:
        # O_NONBLOCK: a FIFO planted in the store is refused below instead of hanging the read
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise Conflict(f"{folder / name} is a link, not a secret ripdep wrote", hint="nothing was read") from None
        raise
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Conflict(f"{folder / name} is not a regular file, not a secret ripdep wrote", hint="nothing was read")
        return Secret(f.read().decode())


def read_store(folder: Path) -> dict[str, Secret]:
    dfd = _open_store(folder)
    if dfd is None:
        return {}
    try:
        out = {}
        for name in sorted(os.listdir(dfd)):
            if name.startswith(".") or not names.ENV_KEY.fullmatch(name):
                continue  # temp files of an interrupted write; any other name ripdep never writes
            value = _read(dfd, folder, name)
            if value is not None:
                out[name] = value
        return out
    finally:
        os.close(dfd)


def write_secret(folder: Path, name: str, value: Secret) -> None:
    """Temp file created beside it with its final mode, fsync, rename over the name, fsync folder:
    a reader or a crash sees the old value or the new one, never a partial one."""
    check_name(name)
    dfd = _open_store(folder, create=True)
    if dfd is None:  # removed between the mkdir and the open: dir_fd=None would write into the cwd
        raise Conflict(f"{folder} disappeared while a secret was being written",
                       hint="nothing was written; run the command again")
    tmp = f".{name}.{csprng.token_hex(8)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(fd, 0o600)
                os.fchown(fd, 0, 0)
                f.write(value.reveal().encode())
                f.flush()
                os.fsync(fd)
            os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)  # replaces a link itself, never its target
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dfd)
            except FileNotFoundError:
                pass
            raise
        os.fsync(dfd)
    finally:
        os.close(dfd)


def remove_secret(folder: Path, name: str) -> bool:
    """Delete one secret's file (a link there is removed, never followed); False if absent."""
    check_name(name)
    dfd = _open_store(folder)
    if dfd is None:
        return False
    try:
        os.unlink(name, dir_fd=dfd)
        os.fsync(dfd)
        return True
    except FileNotFoundError:
        return False
    finally:
        os.close(dfd)


def secret_mtime(folder: Path, name: str) -> float | None:
    """When the secret was last written (None if it has no value)."""
    check_name(name)
    dfd = _open_store(folder)
    if dfd is None:
        return None
    try:
        return os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mtime
    except FileNotFoundError:
        return None
    finally:
        os.close(dfd)
