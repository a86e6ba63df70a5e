"""manifest:NAME — /etc/ripdep/apps/NAME.toml, the operator's file. ripdep writes it only when
`deploy --manifest FILE` installs a new one (a relative `source` is made absolute on the way, as the
installed copy no longer sits beside the code) and through `ripdep config set/unset`."""

from __future__ import annotations

from pathlib import Path

from ripdep.host import fs
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


def plan(app: str, manifest_file: Path | None, paths: Paths) -> Step:
    rid = f"manifest:{app}"
    if manifest_file is None:
        return Step(rid, [], str(paths.manifest(app)))
    text = installed_text(manifest_file, manifest_file.read_text())
    want = DesiredFile(paths.manifest(app), text.encode(), 0o640)
    changes = plan_file(rid, want)
    for c in changes:
        write = c.run
        c.run = lambda write=write: (fs.ensure_dir(paths.manifests.parent, mode=0o755),
                                     fs.ensure_dir(paths.manifests, mode=0o750), write())
    return Step(rid, changes, str(paths.manifest(app)))
