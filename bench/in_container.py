"""Timings taken inside the systemd container (run by bench/run.sh with Debian's python3): ripdep
side by side with its floor, bench/floor.sh (the same work done the naive way by a bash script),
interleaved (the two alternate within each round, which goes first alternating too), medians of N.

  python3 bench/in_container.py deploy   first deploy, no-change rerun, config set (+ ripdep --help)
  python3 bench/in_container.py status   status of 50 apps vs one systemctl show; list vs python3 -c pass
  python3 bench/in_container.py backup   backup + verification of a ~100 MB database vs pg_dump -Fc
  python3 bench/in_container.py fleet    deploy --like (onboarding a copy), plan of 50 apps: absolute targets
  python3 bench/in_container.py releases an app of 10,000 files / 250 MB: no-change rerun, one-file change

Every row: median seconds of each side (min-max), the ratio of the medians, the issue's target for
it, and the median peak RSS of the ripdep process. BENCH_N sets N (default 7).
"""

import json
import os
import resource
import statistics
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MINAPP = ROOT / "bench/minapp/ripdep.toml"
FLOOR = str(ROOT / "bench/floor.sh")
TPL = Path("/tmp/floor-tpl")
N = int(os.environ.get("BENCH_N", "7"))
FLOOR_PORT = 30000  # floor apps' ports (each app has its own network namespace: they never meet ripdep's)


def timed(argv, check=True):
    """(seconds, stdout) of one process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate()
    elapsed = time.perf_counter() - t0
    if check and proc.returncode != 0:
        sys.exit(f"{argv} failed ({proc.returncode}): {err}{out}")
    return elapsed, out


def peak_rss(argv) -> float:
    """Peak RSS (MB) of one run of argv, from wait4's rusage of that child alone."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(proc.pid, 0)
    return usage.ru_maxrss / 1024


def ripdep(*args):
    return ["ripdep", *args]


def floor(*args):
    return ["/bin/bash", FLOOR, *args]


ROWS = []


def pair(name, rounds, ours, theirs, target, check_ours=None, floor_name=""):
    """Time ours(i) and theirs(i) for i in rounds, alternating which goes first."""
    a, b = [], []
    for n, i in enumerate(rounds):
        order = [(ours, a), (theirs, b)] if n % 2 == 0 else [(theirs, b), (ours, a)]
        for make, samples in order:
            elapsed, out = timed(make(i))
            samples.append(elapsed)
            if make is ours and check_ours:
                check_ours(out)
    ROWS.append((name, floor_name, a, b, target))
    print(f"  {name}: ripdep {' '.join(f'{x:.3f}' for x in a)} | floor {' '.join(f'{x:.3f}' for x in b)}",
          file=sys.stderr, flush=True)


def print_rows(rss):
    print("| measure | floor | floor s | ripdep s | ratio | target | met | ripdep peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for name, floor_name, a, b, target in ROWS:
        ma, mb = statistics.median(a), statistics.median(b)
        ratio = ma / mb
        print(f"| {name} | {floor_name} | {mb:.3f} ({min(b):.3f}-{max(b):.3f}) | {ma:.3f} ({min(a):.3f}-{max(a):.3f}) "
              f"| {ratio:.2f} | ≤ {target} | {'yes' if ratio <= target else 'no'} | {rss.get(name, '')} |")
    print(f"\nN={N}, load average before: {BEFORE_LOAD}, after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


BEFORE_LOAD = " ".join(f"{x:.2f}" for x in os.getloadavg())


def changed(expect):
    def check(out):
        doc = json.loads(out)
        assert not doc["failed"] and doc["changed"] is expect, doc
    return check


def make_templates(app="flrtpl"):
    """Deploy one app with ripdep and keep what it rendered, with @APP@ and @PORT@ for its name and port."""
    timed(ripdep("deploy", app, "--manifest", str(MINAPP), "--json"))
    port = tomllib.loads(Path(f"/var/lib/ripdep/state/{app}.toml").read_text())["port"]
    TPL.mkdir(exist_ok=True)
    files = {"unit": f"/etc/systemd/system/ripdep-{app}.service",
             "socket": f"/etc/systemd/system/ripdep-{app}.proxy.socket",
             "proxy": f"/etc/systemd/system/ripdep-{app}.proxy.service",
             "caddy": f"/etc/caddy/ripdep/paths/{app}.caddy",
             "env": f"/etc/ripdep/env/{app}.env"}
    for name, path in files.items():
        text = Path(path).read_text().replace(app, "@APP@")
        text = text.replace(f'"{port}"', '"@PORT@"').replace(f":{port}", ":@PORT@")
        (TPL / name).write_text(text)
    timed(ripdep("stop", app, "--json"))


def no_watch():
    """The releases' watch window (default 10 s after every switch, docs/releases.md) is a wait by
    design, not work: deploy-time figures are taken without it, as the issues define them ("up to
    the health check"); docs/benchmarks.md says so."""
    subprocess.run(["sed", "-i", "s/^releases_watch = .*/releases_watch = 0/", "/etc/ripdep/ripdep.toml"], check=True)


def bench_deploy():
    no_watch()
    make_templates()
    # one untimed run of each first: caches (templates, binaries, PAM) warm on both sides
    timed(ripdep("deploy", "r-w", "--manifest", str(MINAPP), "--json"))
    timed(floor("deploy", "s-w", str(FLOOR_PORT + 99), str(MINAPP)))
    pair("first deploy", range(N),
         lambda i: ripdep("deploy", f"r-{i}", "--manifest", str(MINAPP), "--json"),
         lambda i: floor("deploy", f"s-{i}", str(FLOOR_PORT + i), str(MINAPP)), 1.0, changed(True),
         "floor.sh deploy")
    pair("no-change rerun", range(N), lambda i: ripdep("deploy", "r-0", "--json"),
         lambda i: floor("deploy", "s-0", str(FLOOR_PORT), str(MINAPP)), 1.3, changed(False),
         "floor.sh deploy, again")
    # each round its own app: five restarts within 30 s would trip the unit's start limit (floor.sh
    # does not reset it; ripdep does)
    pair("config set of one env var (restart, health check)", range(N),
         lambda i: ripdep("config", "set", f"r-{i}", f"GREETING=v{i}", "--json"),
         lambda i: floor("config", f"s-{i}", f"GREETING=v{i}"), 1.2, changed(True), "floor.sh config")
    rss = {"first deploy": _rss(["deploy", "r-rss", "--manifest", str(MINAPP), "--json"]),
           "no-change rerun": _rss(["deploy", "r-0", "--json"]),
           "config set of one env var (restart, health check)": _rss(["config", "set", "r-rss", "GREETING=rss", "--json"])}
    print_rows(rss)
    helps = [timed(ripdep("--help"))[0] for _ in range(N)]
    print(f"`ripdep --help`: median {statistics.median(helps):.3f} s")


def _rss(args, runs=1):
    return f"{statistics.median(peak_rss(ripdep(*args)) for _ in range(runs)):.0f}"


def bench_status(count=50):
    apps = [f"st-{i}" for i in range(count)]
    for app in apps:
        timed(ripdep("deploy", app, "--manifest", str(MINAPP), "--json"))
    time.sleep(3)  # the last apps finish starting: measure status, not their start-up

    def healthy(out):
        doc = json.loads(out)
        assert len(doc["data"]["apps"]) == count and not doc["data"]["degraded"], doc

    timed(ripdep("status", *apps, "--json"))  # warm-up
    pair(f"status of {count} apps", range(N), lambda i: ripdep("status", *apps, "--json"),
         lambda i: floor("status", *apps), 2.5, healthy, f"one `systemctl show` of the {count} units")
    pair("list", range(N), lambda i: ripdep("list", "--json"), lambda i: ["/usr/bin/python3", "-c", "pass"], 3.0,
         None, "`python3 -c pass`")
    print_rows({f"status of {count} apps": _rss(["status", *apps, "--json"], 3), "list": _rss(["list", "--json"], 3)})


def bench_backup():
    timed(ripdep("deploy", "big", "--manifest", str(MINAPP), "--json"))
    fill = ("DROP TABLE IF EXISTS filler; CREATE TABLE filler AS SELECT g, md5(g::text) || repeat('x', 100) AS t "
            "FROM generate_series(1, 480000) g; CREATE INDEX ON filler (g);")
    psql = ["runuser", "-u", "big", "--", "psql", "-XAtq", "-h", "/run/postgresql", "-d", "big", "-c"]
    timed(psql + [fill])
    size = int(timed(psql + ["SELECT pg_database_size('big')"])[1])

    def verified(out):
        assert json.loads(out)["data"]["backup"]["verified"]

    pair(f"backup + verify of a {size / 1e6:.0f} MB database", range(N), lambda i: ripdep("backup", "big", "--json"),
         lambda i: floor("dump", "big", "/tmp/plain.dump"), 1.5, verified, "`pg_dump -Fc` to a file")
    print_rows({})


def single(name, argv_of, target, check=None, before=None):
    """Medians of N runs of one command against an absolute target (the issue gives seconds)."""
    samples = []
    for i in range(N):
        if before:
            before(i)
        elapsed, out = timed(argv_of(i))
        samples.append(elapsed)
        if check:
            check(out)
    median = statistics.median(samples)
    print(f"| {name} | {median:.3f} ({min(samples):.3f}-{max(samples):.3f}) | ≤ {target} | "
          f"{'yes' if median <= target else 'no'} |", flush=True)


def bench_fleet(count=50):
    print("| measure | ripdep s | target s | met |\n|---|---|---|---|")
    timed(ripdep("deploy", "fl-0", "--manifest", str(MINAPP), "--json"))
    single("deploy NEW --like APP (onboarding a copy, health-checked)",
           lambda i: ripdep("deploy", f"fl-{i + 1}", "--like", "fl-0", "--json"), 2.0, changed(True))
    for i in range(N + 1, count):
        timed(ripdep("deploy", f"fl-{i}", "--like", "fl-0", "--json"))
    single(f"plan of {count} apps (in sync)", lambda i: ripdep("plan", "--json"), 1.0)


def bench_releases(files=10_000, size=25_000):
    import shutil

    no_watch()
    source = Path("/srv/src/big-app")
    shutil.rmtree(source, ignore_errors=True)
    (source / "venv").mkdir(parents=True)
    shutil.copy(MINAPP.parent / "index.html", source / "index.html")
    for i in range(files - 1):
        (source / "venv" / f"f{i:05d}.py").write_bytes(os.urandom(size))
    os.system(f"chmod -R o+rX {source}")
    manifest = Path("/root/big-app.toml")
    manifest.write_text(MINAPP.read_text().replace('source = "."', f'source = "{source}"'))
    timed(ripdep("deploy", "big-app", "--manifest", str(manifest), "--json"))
    print(f"| measure ({files} files, {files * size / 1e6:.0f} MB) | ripdep s | target s | met |\n|---|---|---|---|")
    single("no-change rerun", lambda i: ripdep("deploy", "big-app", "--json"), 0.25, changed(False))
    single("one-file code change (new release, restart, health check)",
           lambda i: ripdep("deploy", "big-app", "--json"), 1.5, changed(True),
           before=lambda i: (source / "venv" / "f00001.py").write_bytes(os.urandom(size)))


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    {"deploy": bench_deploy, "status": bench_status, "backup": bench_backup, "fleet": bench_fleet,
     "releases": bench_releases}[sys.argv[1]]()
