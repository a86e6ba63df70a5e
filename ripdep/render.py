"""Pure rendering: manifest + allocated facts in, exact file bytes out. No host access here.

Templates live in units/ and caddy/ (shipped inside the package as ripdep/templates/...). Values are
validated in names.py/spec.py and quoted here for the one syntax they land in.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from ripdep.errors import PreconditionFailed, ValidationFailed
from ripdep.paths import PATHS, Paths
from ripdep.spec import AppSpec

TEMPLATE_FILES = ("units/app.service.j2", "units/sandbox.j2", "units/process.service.j2", "units/job.service.j2",
                  "units/job.timer.j2", "units/backup.service.j2", "units/backup.timer.j2",
                  "units/proxy.socket.j2", "units/proxy.service.j2", "caddy/path.caddy.j2", "caddy/host.caddy.j2")
SOCKET_PROXYD = "/lib/systemd/systemd-socket-proxyd"
MARKER = "# managed by ripdep: app {app}"  # first line of every file ripdep writes for an app


def template_root() -> Path:
    """Where units/ and caddy/ are: $RIPDEP_TEMPLATES, the installed package data, or the checkout."""
    override = os.environ.get("RIPDEP_TEMPLATES")
    if override:
        return Path(override)
    packaged = Path(__file__).parent / "templates"
    if (packaged / "units").is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent  # running from a source checkout


def check_templates() -> Path:
    root = template_root()
    missing = [f for f in TEMPLATE_FILES if not (root / f).is_file()]
    if missing:
        raise PreconditionFailed(
            f"template {root / missing[0]} is missing",
            hint="reinstall ripdep (sudo ./install.sh) or fix RIPDEP_TEMPLATES",
        )
    return root


BYTECODE_CACHE = "/var/cache/ripdep/templates"


@cache
def _jinja(root: str):
    import jinja2

    bytecode = None
    if os.geteuid() == 0:
        # compiled templates (keyed by source checksum) save ~30 ms on every run
        os.makedirs(BYTECODE_CACHE, mode=0o700, exist_ok=True)
        bytecode = jinja2.FileSystemBytecodeCache(BYTECODE_CACHE)
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(root),
        bytecode_cache=bytecode,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


RENDERED_CACHE = "/var/cache/ripdep/rendered"


def render_template(name: str, **context) -> str:
    root = check_templates()
    cache, key = _rendered(root, name, context)
    if cache is not None:
        try:
            head, _, text = cache.read_text(encoding="utf-8").partition("\n")
            if head == key:
                return text
        except (FileNotFoundError, UnicodeDecodeError):
            pass
    import jinja2

    try:
        text = _jinja(str(root)).get_template(name).render(**context)
    except jinja2.TemplateError as e:
        raise ValidationFailed(f"template {root / name} is broken: {e}", hint="fix or reinstall the template") from None
    if cache is not None:
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
        tmp.write_text(f"{key}\n{text}", encoding="utf-8")
        os.replace(tmp, cache)
    return text


def _rendered(root: Path, name: str, context: dict) -> tuple[Path | None, str]:
    """Where the last rendering of `name` for this app is kept, and the key it must carry to be
    this one (the template's bytes and every value it is given): a no-change run compares files
    without importing jinja2 (~30-45 ms). Root's runs only, and only ripdep's own unit and Caddy
    templates, whose values hold no secret. One file per template and app, replaced when it changes."""
    if os.geteuid() != 0 or name not in TEMPLATE_FILES:
        return None, ""
    import hashlib

    from ripdep import __version__

    # every template's bytes, not just this one's: units include units/sandbox.j2
    source = b"".join((root / f).read_bytes() for f in TEMPLATE_FILES)
    key = hashlib.sha256(repr((__version__, name, source, sorted(context.items()))).encode()).hexdigest()
    os.makedirs(RENDERED_CACHE, mode=0o700, exist_ok=True)
    return Path(RENDERED_CACHE) / f"{name.replace('/', '.')}.{context.get('app', '')}", key


# --- quoting for the syntaxes values land in ------------------------------------------------

def systemd_word(word: str) -> str:
    """One argv word for ExecStart=: double-quoted, with systemd's specifier and variable expansion
    disabled (% -> %%, $ -> $$), so the app receives exactly the word from the manifest."""
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def start_word(word: str) -> str:
    """One word of the manifest's start for ExecStart=: like systemd_word, except that ${NAME}
    (checked against the app's own variables in spec.py) is left for systemd to expand; $$ and any
    other $ reach the app as a literal $."""
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{variables_only(escaped)}"'


def variables_only(word: str) -> str:
    """The word with every $ that is not a ${NAME} doubled, for systemd to expand exactly those
    (ExecStart= lines, and the argv systemd-run hands to PID 1 for the release phase)."""
    from ripdep.spec import START_VARIABLE

    return START_VARIABLE.sub(lambda m: m.group(0) if m.group(1) is not None else "$$" + (m.group(2) or ""), word)


def env_file_value(value: str) -> str:
    """A value for EnvironmentFile=: inside double quotes systemd unescapes exactly \\ " ` $ and
    keeps everything else (newlines included) literally, and expands neither $VAR nor %x."""
    out = value
    for ch in ("\\", '"', "`", "$"):
        out = out.replace(ch, "\\" + ch)
    return f'"{out}"'


def parse_env_file(text: str) -> dict[str, str]:
    """The inverse of render_env_file for files ripdep wrote (used to mask and diff them)."""
    result: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        if text[i] in "#\n":
            i = text.find("\n", i) + 1 or n
            continue
        eq = text.index("=", i)
        key = text[i:eq]
        i = eq + 2  # skip ="
        value = []
        while text[i] != '"':
            if text[i] == "\\" and text[i + 1] in '\\"`$':
                i += 1
            value.append(text[i])
            i += 1
        result[key] = "".join(value)
        i += 2  # closing quote and newline
    return result


# --- the files -------------------------------------------------------------------------------

def exec_start(spec: AppSpec, argv: tuple[str, ...], paths: Paths = PATHS) -> str:
    """ExecStart='s value for a command of the manifest: a program path like ./run.sh is relative
    to the code folder; ${NAME} in the arguments is left for systemd (start_word)."""
    words = list(argv)
    if "/" in words[0] and not words[0].startswith("/"):
        words[0] = str(paths.code(spec.name) / words[0])
    return " ".join(systemd_word(w) if i == 0 else start_word(w) for i, w in enumerate(words))


def _sandbox(spec: AppSpec, paths: Paths, credentials: tuple[str, ...], limits=None) -> dict:
    """What units/sandbox.j2 needs: the same for every unit of the app but its limits."""
    return dict(marker=MARKER.format(app=spec.name), app=spec.name, user=spec.user,
                code_dir=str(paths.code(spec.name)), env_file=str(paths.env_file(spec.name)), profile=spec.profile,
                database=spec.database, limits=limits or spec.limits, credentials=sorted(credentials),
                secrets_dir=str(paths.secrets(spec.name)), egress=list(spec.egress), app_unit=paths.unit_name(spec.name))


def render_unit(spec: AppSpec, paths: Paths = PATHS, credentials: tuple[str, ...] = ()) -> str:
    """The unit file; `credentials` are the secret names loaded with LoadCredential= (delivery =
    "credentials"), read by systemd from the root-only store at each start."""
    return render_template("units/app.service.j2", **_sandbox(spec, paths, credentials),
                           exec_start=exec_start(spec, spec.start, paths),
                           proxy_socket=paths.proxy_socket_name(spec.name))


def render_process_units(spec: AppSpec, paths: Paths = PATHS, credentials: tuple[str, ...] = ()) -> dict[str, str]:
    """unit name -> text of every [processes] unit (one per instance)."""
    units = {}
    for name, process in spec.processes.items():
        context = _sandbox(spec, paths, credentials, process.limits)
        for i, unit in enumerate(paths.process_unit_names(spec.name, name, process.count), 1):
            units[unit] = render_template("units/process.service.j2", **context, process=name,
                                          instance=i if process.count > 1 else None,
                                          exec_start=exec_start(spec, process.start, paths))
    return units


def render_job_units(spec: AppSpec, paths: Paths = PATHS, credentials: tuple[str, ...] = ()) -> dict[str, str]:
    """unit name -> text of every [cron] job's oneshot service and timer."""
    units = {}
    for name, job in spec.cron.items():
        service = paths.job_unit_name(spec.name, name)
        context = dict(_sandbox(spec, paths, credentials), job=name, job_unit=service)
        units[service] = render_template("units/job.service.j2", **context, timeout=job.timeout,
                                         exec_start=exec_start(spec, job.run, paths))
        units[paths.job_unit_name(spec.name, name, "timer")] = render_template(
            "units/job.timer.j2", **context, schedule=job.schedule)
    return units


def render_proxy_units(spec: AppSpec, port: int, paths: Paths = PATHS) -> dict[str, str]:
    """unit name -> text of the socket Caddy connects to and the proxy it activates."""
    context = dict(marker=MARKER.format(app=spec.name), app=spec.name, user=spec.user,
                   app_unit=paths.unit_name(spec.name), proxy_unit=paths.proxy_service_name(spec.name),
                   socket_path=str(paths.proxy_socket(spec.name)), proxyd=SOCKET_PROXYD, port=port,
                   private_network=not spec.egress)
    return {paths.proxy_socket_name(spec.name): render_template("units/proxy.socket.j2", **context),
            paths.proxy_service_name(spec.name): render_template("units/proxy.service.j2", **context)}


def render_snippet(spec: AppSpec, paths: Paths = PATHS) -> str:
    template = "caddy/host.caddy.j2" if spec.route.host else "caddy/path.caddy.j2"
    return render_template(
        template,
        marker=MARKER.format(app=spec.name),
        app=spec.name,
        socket_path=str(paths.proxy_socket(spec.name)),
        path=spec.route.path,
        mount=spec.mount_path,
        host=spec.route.host,
        tls=spec.route.tls,
    )


def app_environment(spec: AppSpec, port: int, paths: Paths = PATHS) -> dict[str, str]:
    """The non-secret variables every app gets, then the manifest's env."""
    env = {
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "MOUNT_PATH": spec.mount_path,
    }
    if spec.database:
        env["DATABASE_URL"] = f"postgresql:///{spec.database_name}?host=/run/postgresql"
    if spec.files:
        env["CONFIG_DIRECTORY"] = str(paths.config_dir(spec.name))
    env.update(spec.env)
    return env


def render_env_file(app: str, env: dict[str, str], secrets: dict[str, str]) -> str:
    lines = [MARKER.format(app=app)]
    for key, value in list(env.items()) + sorted(secrets.items()):
        lines.append(f"{key}={env_file_value(value)}")
    return "\n".join(lines) + "\n"


def mask_env_file(text: str, secret_keys: set[str]) -> str:
    """The env file as it may be shown (diff, JSON): secret values replaced by a fixed mask."""
    try:
        env = parse_env_file(text)
    except (ValueError, IndexError):
        return "(a file ripdep cannot parse; not shown, it may hold secrets)\n"
    header = text.split("\n", 1)[0]
    lines = [header] + [f"{k}={'********' if k in secret_keys else env_file_value(v)}" for k, v in env.items()]
    return "\n".join(lines) + "\n"
