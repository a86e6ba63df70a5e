"""Timings taken inside the systemd container (run by bench/run.sh with Debian's python3).

  python3 bench/in_container.py deploy     first deploy, no-change rerun, --help
  python3 bench/in_container.py status     `ripdep status --json` with 10 and 50 apps
  python3 bench/in_container.py backup     backup + verification of a 100 MB database vs plain pg_dump
"""

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples/hello/ripdep.toml"


def timed(argv):
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{argv} failed: {proc.stderr}")
    return elapsed, proc.stdout


def row(name, samples, note=None):
    med = statistics.median(samples)
    tail = f" {note} |" if note is not None else ""
    print(f"| {name} | {med:.3f} | {min(samples):.3f} | {max(samples):.3f} | {len(samples)} |{tail}")


def bench_deploy(first_runs=5, reruns=20):
    first, first_wo_wait = [], []
    for i in range(first_runs):
        elapsed, out = timed(["ripdep", "deploy", f"bench-{i}", "--manifest", str(EXAMPLE), "--json"])
        doc = json.loads(out)
        first.append(elapsed)
        first_wo_wait.append(elapsed - doc["health"]["seconds"])
    rerun = [timed(["ripdep", "deploy", "bench-0", "--json"])[0] for _ in range(reruns)]
    helps = [timed(["ripdep", "--help"])[0] for _ in range(reruns)]
    print("| measurement | median s | min s | max s | runs | note |")
    print("|---|---|---|---|---|---|")
    row("first deploy of the example app, without the app's start-up wait", first_wo_wait,
        "total minus the health check's wait for the app to come up")
    row("first deploy of the example app, total", first, "includes the app's own start-up")
    row("no-change rerun (`ripdep deploy bench-0 --json`)", rerun, "includes a live health check through Caddy")
    row("`ripdep --help`", helps, "")


def bench_status(counts=(10, 50), runs=15):
    print("| apps | median s | min s | max s | runs | per app ms |")
    print("|---|---|---|---|---|---|")
    deployed = 0
    for count in counts:
        for i in range(deployed, count):
            timed(["ripdep", "deploy", f"st-{i}", "--manifest", str(EXAMPLE), "--json"])
        deployed = count
        time.sleep(3)  # let the last apps finish starting: measure status, not their start-up
        # the apps by name: `bench/run.sh deploy status` leaves the deploy benchmark's apps beside them
        argv = ["ripdep", "status", *(f"st-{i}" for i in range(count)), "--json"]
        timed(argv)  # warm-up
        samples = []
        for _ in range(runs):
            elapsed, out = timed(argv)
            doc = json.loads(out)
            assert len(doc["data"]["apps"]) == count and not doc["data"]["degraded"], doc
            samples.append(elapsed)
        med = statistics.median(samples)
        print(f"| {count} | {med:.3f} | {min(samples):.3f} | {max(samples):.3f} | {runs} | {med / count * 1000:.1f} |")


def bench_backup(runs=3):
    timed(["ripdep", "deploy", "big", "--manifest", str(EXAMPLE), "--json"])
    fill = ("DROP TABLE IF EXISTS filler; CREATE TABLE filler AS SELECT g, md5(g::text) || repeat('x', 100) AS t "
            "FROM generate_series(1, 480000) g; CREATE INDEX ON filler (g);")
    psql = ["runuser", "-u", "big", "--", "psql", "-XAtq", "-h", "/run/postgresql", "-d", "big", "-c"]
    timed(psql + [fill])
    size = int(timed(psql + ["SELECT pg_database_size('big')"])[1])
    plain, ours = [], []
    for _ in range(runs):
        plain.append(timed(["runuser", "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/pg_dump", "-Fc",
                            "-h", "/run/postgresql", "-d", "big", "-f", "/tmp/plain.dump"])[0])
        elapsed, out = timed(["ripdep", "backup", "big", "--json"])
        ours.append(elapsed)
        assert json.loads(out)["data"]["backup"]["verified"]
    print(f"database size: {size / 1e6:.0f} MB")
    print("| measurement | median s | min s | max s | runs |")
    print("|---|---|---|---|---|")
    row("plain `pg_dump -Fc` (to a file)", plain)
    row("`ripdep backup big` (dump, state, secrets, checksums, verification by restore)", ours)
    print(f"\nratio backup+verify / plain dump: {statistics.median(ours) / statistics.median(plain):.2f}")


if __name__ == "__main__":
    {"deploy": bench_deploy, "status": bench_status, "backup": bench_backup}[sys.argv[1]]()
