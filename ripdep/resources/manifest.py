"""manifest:NAME — /etc/ripdep/apps/NAME.toml, the operator's file. ripdep writes it only when
`deploy --manifest FILE` installs a new one (a relative `source` is made absolute on the way, as the
installed copy no longer sits beside the code) and through `ripdep config set/unset`."""

from __future__ import annotations

import contextlib
from pathlib import Path

from ripdep.paths import Paths
from ripdep.resources import Step
from ripdep.resources.file import DesiredFile, plan_file


def installed_text(manifest_file: Path, raw: str) -> str:
    import tomlkit  # keeps the operator's comments and formatting

    doc = tomlkit.parse(raw)
    source = doc.get("source")
    if isinstance(source, str) and not Path(source).is_absolute():
        doc["source"] = str((manifest_file.resolve().parent / source).resolve())
    return tomlkit.dumps(doc)


def plan(host, app: str, manifest_file: Path | None, paths: Paths) -> tuple[Step, str]:
    """The step, and the manifest's text as installed (kept in the release record)."""
    rid = f"manifest:{app}"
    if manifest_file is None:
        content = host.read_file(paths.manifest(app)).content or b""
        return Step(rid, [], str(paths.manifest(app))), content.decode(errors="replace")
    text = installed_text(manifest_file, manifest_file.read_text())
    want = DesiredFile(paths.manifest(app), text.encode(), 0o640,
                       dirs=((paths.manifests.parent, 0o755), (paths.manifests, 0o750)))
    return Step(rid, plan_file(host, rid, want), str(paths.manifest(app))), text


@contextlib.contextmanager
def temporary(label: str, text: str):
    """A manifest's text in a root-only temporary file, for a deploy of it (`deploy --like`, a
    release's manifest on a rollback or revert): the engine reads manifests from files."""
    import os
    import tempfile  # here: a deploy that needs no temporary manifest does not pay for the import

    fd, name = tempfile.mkstemp(prefix=f"ripdep-{label}.", suffix=".toml")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        yield Path(name)
    finally:
        os.unlink(name)
