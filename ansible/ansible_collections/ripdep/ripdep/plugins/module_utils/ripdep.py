# Copyright: ripdep maintainers
# MIT License
"""What the ripdep modules share: run the ripdep CLI with --json and read its one document, the
versioned envelope of ripdep's docs/json.md. That document is the whole contract with ripdep: no
module imports ripdep's Python code, so the target's ripdep and this collection can be upgraded apart
within one envelope version."""

from __future__ import annotations

import json
import math
import re

ENVELOPE_VERSION = 2
BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def ripdep_bin(module) -> str:
    exe = module.params.get("executable") or "ripdep"
    if "/" in exe:
        return exe
    return module.get_bin_path(exe, required=True, opt_dirs=["/usr/local/bin", "/usr/local/sbin"])


def run(module, *args: str) -> dict:
    """`ripdep ARGS --json`: its document (with `exit_code`), whatever the exit status. A run that
    prints no document at all (not ripdep, a crash before it could) fails the task here."""
    cmd = [ripdep_bin(module), *args, "--json"]
    rc, out, err = module.run_command(cmd, environ_update={"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"})
    try:
        doc = json.loads(out)
    except ValueError:
        module.fail_json(msg=f"ripdep {args[0]} printed no JSON document (exit {rc}): {err.strip()[-500:]}",
                         rc=rc, cmd=cmd, stdout=out, stderr=err)
    if not isinstance(doc, dict) or doc.get("version") != ENVELOPE_VERSION:
        version = doc.get("version") if isinstance(doc, dict) else None
        module.fail_json(msg=f"ripdep printed a JSON document of version {version!r}; this collection reads "
                             f"version {ENVELOPE_VERSION} (upgrade the collection or ripdep)", rc=rc, cmd=cmd)
    doc["stderr"] = err  # progress lines; kept for -vvv
    return doc


def did_change(doc: dict) -> bool:
    """With --check ripdep reports changed=false and lists what it would do in `actions`."""
    return bool(doc.get("actions")) if doc.get("check") else bool(doc.get("changed"))


def failure_message(doc: dict) -> str:
    """ripdep's error, its hint and the exit code, in one line."""
    errors = doc.get("errors") or [{}]
    error = errors[0]
    text = error.get("message") or doc.get("msg") or "ripdep failed"
    if error.get("hint"):
        text += f" (hint: {error['hint']})"
    return f"{text} [ripdep exit {doc.get('exit_code')}: {error.get('code') or 'error'}]"


def fail(module, doc: dict, changed: bool = False, **extra) -> None:
    errors = doc.get("errors") or [{}]
    module.fail_json(msg=failure_message(doc), rc=doc.get("exit_code"), exit_code=doc.get("exit_code"),
                     error_code=errors[0].get("code"), hint=errors[0].get("hint"),
                     details=errors[0].get("details") or [], changed=changed or did_change(doc), ripdep=doc, **extra)


def ansible_diffs(unified: list[str]) -> list[dict]:
    """ripdep's unified diffs (secret values already masked by ripdep) as Ansible's before/after
    pairs, one per file. Only the lines the diff carries (its hunks) are known: before holds the
    context and removed lines, after the context and added lines, so Ansible shows the same change."""
    out = []
    for text in unified:
        entry = {"before_header": "", "after_header": "", "before": "", "after": ""}
        before, after = [], []
        for line in text.splitlines():
            if line.startswith("--- ") and not entry["before_header"]:
                entry["before_header"] = line[4:]
            elif line.startswith("+++ ") and not entry["after_header"]:
                entry["after_header"] = line[4:]
            elif line.startswith("@@"):
                if before or after:  # lines skipped between hunks
                    before.append("...")
                    after.append("...")
            elif line.startswith("\\"):
                continue
            elif line.startswith("-"):
                before.append(line[1:])
            elif line.startswith("+"):
                after.append(line[1:])
            elif line.startswith(" "):
                before.append(line[1:])
                after.append(line[1:])
        entry["before"] = "".join(f"{line}\n" for line in before)
        entry["after"] = "".join(f"{line}\n" for line in after)
        out.append(entry)
    return out


# --- an inline manifest (a YAML dict) as TOML ------------------------------------------------

class TomlError(ValueError):
    pass


def to_toml(data: dict) -> str:
    """A manifest dict as TOML text, deterministic (keys in the order given), so the same YAML
    gives the same file and a rerun changes nothing. ripdep validates the result as any manifest."""
    if not isinstance(data, dict):
        raise TomlError("the manifest must be a mapping")
    lines: list[str] = []
    _table(lines, [], data)
    return "\n".join(lines).strip("\n") + "\n"


def _table(lines: list[str], path: list[str], table: dict) -> None:
    scalars = [(k, v) for k, v in table.items() if not isinstance(v, dict)]
    tables = [(k, v) for k, v in table.items() if isinstance(v, dict)]
    if path and (scalars or not tables):
        lines += ["", f"[{'.'.join(_key(p) for p in path)}]"]
    for key, value in scalars:
        lines.append(f"{_key(key)} = {_value(value, path + [str(key)])}")
    for key, value in tables:
        _table(lines, path + [_checked_key(key, path)], value)


def _checked_key(key, path: list[str]) -> str:
    if not isinstance(key, str):
        raise TomlError(f"manifest key {'.'.join(path + [str(key)])!r}: keys must be strings")
    return key


def _key(key) -> str:
    key = _checked_key(key, [])
    return key if BARE_KEY.fullmatch(key) else _string(key)


def _string(text: str) -> str:
    # JSON's escapes are TOML's (\" \\ \b \f \n \r \t \uXXXX); DEL must be escaped in TOML too
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(value, path: list[str]) -> str:
    where = ".".join(path)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v, path) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v, path + [str(k)])}" for k, v in value.items()) + " }"
    if value is None:
        raise TomlError(f"manifest key {where!r} is null, which TOML cannot hold: remove the key or give a value")
    raise TomlError(f"manifest key {where!r}: a {type(value).__name__} has no TOML form here; quote it as a string")
