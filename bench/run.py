"""Runs every benchmark of BENCHMARKS.md and writes the figures (JSON and Markdown).

Each engine runs as its own process under /usr/bin/time, for its peak RSS. Started by
scripts/bench.sh, which builds the binaries and the Python environment first.
"""

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent

# Sessions per city-hour that give about one million envelopes per day.
SESSIONS_PER_HOUR_1M = 1282
DAY0 = "2026-11-01T00:00:00Z"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def timed(cmd, env=None, cwd=None):
    """Runs cmd under /usr/bin/time; returns (stdout JSON or text, wall seconds, peak RSS bytes)."""
    stats = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-time-{os.getpid()}.txt"
    full = ["/usr/bin/time", "-f", "%e %M", "-o", str(stats)] + [str(c) for c in cmd]
    t = time.perf_counter()
    p = subprocess.run(full, capture_output=True, text=True, env=env, cwd=cwd)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        log(p.stdout[-4000:], p.stderr[-4000:])
        raise SystemExit(f"failed: {' '.join(map(str, cmd))}")
    _, rss_kb = stats.read_text().split()[-2:]
    out = p.stdout.strip().splitlines()
    try:
        out = json.loads(out[-1]) if out else {}
    except json.JSONDecodeError:
        out = p.stdout
    return out, wall, int(rss_kb) * 1024


def project_dir(path: Path):
    """A copy of the shipped project whose lake and catalog live in `path`."""
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "strata.toml", path / "strata.toml")
    if (path / "sql").exists():
        shutil.rmtree(path / "sql")
    shutil.copytree(REPO / "sql", path / "sql")
    return path


def fresh_state(path: Path):
    # The lake starts over with its catalog: its marker (lake/_strata/catalog-id) goes too.
    for d in ["lake/silver", "lake/gold", "lake/ops", "lake/bronze/_bad", "lake/_strata", ".strata"]:
        shutil.rmtree(path / d, ignore_errors=True)


def fingerprint(con, glob, cols):
    """Row count and an order-independent hash of every row of a hive-partitioned Parquet set."""
    exprs = []
    for name, kind in cols:
        if kind == "ts":
            exprs.append(f"CAST(CAST({name} AS TIMESTAMP) AS VARCHAR)")
        elif kind == "int":
            exprs.append(f"CAST({name} AS BIGINT)")
        else:
            exprs.append(f"CAST({name} AS VARCHAR)")
    q = f"""SELECT count(*), sum(hash({', '.join(exprs)})::HUGEINT)::VARCHAR
            FROM read_parquet('{glob}', hive_partitioning = true, hive_types_autocast = false)"""
    n, h = con.execute(q).fetchone()
    return {"rows": n, "hash": h}


SILVER_COLS = {
    "fact_payouts": [
        ("event", "s"), ("status", "s"), ("leg_id", "s"), ("amount_cents", "int"),
        ("provider_ref", "s"), ("failure_reason", "s"), ("currency", "s"), ("city", "s"),
        ("occurred_at", "ts"), ("received_at", "ts"), ("dt", "s"), ("hour", "s"),
    ],
    "fact_search_impressions": [
        ("received_at", "ts"), ("occurred_at", "ts"), ("actor_key", "s"), ("session_id", "s"),
        ("city", "s"), ("query_hash", "s"), ("result_pos", "int"), ("listing_id", "s"),
        ("dt", "s"), ("hour", "s"),
    ],
}


def compare(lake: Path, duck_out: Path):
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    out = {}
    for table, cols in SILVER_COLS.items():
        a = fingerprint(con, f"{lake}/silver/{table}/*/dt=*/hour=*/*.parquet", cols)
        b = fingerprint(con, f"{duck_out}/{table}/dt=*/hour=*/*.parquet", cols)
        out[table] = {"strata": a, "duckdb": b, "same": a == b}
    return out


def bench_silver(args, bins, millions, threads, shape):
    data = Path(args.data) / (f"n{millions}" if shape == "demo" else f"{shape}{millions}")
    proj = project_dir(data / "project")
    lake = proj / "lake"
    days = max(1, round(millions))
    sph = round(SESSIONS_PER_HOUR_1M * millions / days)
    marker = lake / f".generated-{days}-{sph}"
    if not marker.exists():
        shutil.rmtree(lake, ignore_errors=True)
        log(f"generating {millions} M events ({days} days) under {lake}")
        gen, wall, rss = timed([bins["bench"], "gen", "--root", lake, "--start", DAY0, "--days", days,
                                "--sessions-per-hour", sph, "--writers", threads, "--shape", shape])
        gen["peak_rss"] = rss
        (lake / "generated.json").write_text(json.dumps(gen))
        marker.touch()
    gen = json.loads((lake / "generated.json").read_text())
    start = dt.datetime.fromisoformat(DAY0.replace("Z", "+00:00"))
    end = (start + dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
    res = {"millions": millions, "days": days, "generated": gen, "shape": shape}

    # The limit: inflate + tokenize the files the two models read.
    log(f"[{millions} M {shape}] floor")
    for t in sorted({1, threads}):
        f, _, _ = timed([bins["bench"], "floor", "--root", lake, "--threads", t])
        res[f"floor_{t}"] = f
    f, _, _ = timed([bins["bench"], "floor", "--root", lake, "--threads", 1, "--inflate-only"])
    res["inflate_1"] = f

    runs_s, runs_d = [], []
    for i in range(args.repeat):
        log(f"[{millions} M] strata run {i + 1}")
        fresh_state(proj)
        s, wall, rss = timed([bins["bench"], "silver", "--project", proj, "--from", DAY0, "--to", end,
                              "--chunk-hours", 24])
        s.update(wall=wall, peak_rss=rss)
        runs_s.append(s)
        log(f"[{millions} M] duckdb run {i + 1}")
        duck_out = data / "duckdb"
        shutil.rmtree(duck_out, ignore_errors=True)
        duck_out.mkdir(parents=True)
        d, wall, rss = timed([bins["python"], HERE / "duckdb_silver.py", lake, duck_out, threads, "prod"])
        d.update(wall=wall, peak_rss=rss)
        runs_d.append(d)
    res["strata"] = min(runs_s, key=lambda r: r["secs"])
    res["duckdb"] = min(runs_d, key=lambda r: r["secs"])
    res["strata_runs"] = [r["secs"] for r in runs_s]
    res["duckdb_runs"] = [r["secs"] for r in runs_d]
    log(f"[{millions} M] comparing results")
    res["same_rows"] = compare(lake, data / "duckdb")
    if not args.keep:
        shutil.rmtree(data / "duckdb", ignore_errors=True)
    return res


def bench_nrt(args, bins, threads):
    """A day of 5-minute ticks twice over the same data: rereading each window (as before
    `reads='arrived'`) and reading what arrived, side by side."""
    data = Path(args.data) / "nrt"
    shutil.rmtree(data, ignore_errors=True)
    staging = data / "staging"
    sph = max(1, round(SESSIONS_PER_HOUR_1M * args.nrt_millions_per_day))
    log(f"nrt: generating 2 days at {args.nrt_millions_per_day} M/day in 5-minute files")
    gen, _, _ = timed([bins["bench"], "gen", "--root", staging, "--start", DAY0, "--days", 2,
                       "--sessions-per-hour", sph, "--slot-minutes", 5, "--writers", threads])
    start = dt.datetime.fromisoformat(DAY0.replace("Z", "+00:00")) + dt.timedelta(days=1)
    out = {"generated": gen}
    for mode in ["window", "arrived"]:
        proj = project_dir(data / f"project-{mode}")
        copy = data / f"staging-{mode}"
        shutil.copytree(staging, copy)
        log(f"nrt ({mode}): {args.nrt_ticks} ticks")
        cmd = [bins["bench"], "nrt", "--project", proj, "--staging", copy,
               "--start", start.strftime("%Y-%m-%dT%H:%M:%SZ"), "--ticks", args.nrt_ticks]
        if mode == "window":
            cmd.append("--whole-windows")
        r, wall, rss = timed(cmd)
        r["peak_rss"] = rss
        out[mode] = r
        if mode == "arrived":
            # Idle tick: the real binary, process start to exit, at the last tick's instant.
            last = r["ticks"][-1]["at"]
            env = dict(os.environ, STRATA_PROJECT_DIR=str(proj))
            idle = []
            for _ in range(args.idle_repeat):
                t = time.perf_counter()
                p = subprocess.run([bins["strata"], "tick", "--at", last], capture_output=True, text=True, env=env)
                idle.append(time.perf_counter() - t)
                if p.returncode != 0:
                    raise SystemExit(f"idle tick failed: {p.stderr}")
            statuses = re.findall(r"┆ (published|unchanged|superseded|FAILED|skipped) ┆", p.stdout)
            summary = "nothing due" if "nothing due" in p.stdout else f"statuses: {', '.join(statuses)}"
            out["idle_tick"] = {"median_ms": statistics.median(idle) * 1e3, "min_ms": min(idle) * 1e3,
                                "output": summary}
    shutil.rmtree(data, ignore_errors=True)
    return out


def machine():
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": round(int(mem) / 2**20, 1),
            "kernel": platform.release(), "load_before": os.getloadavg()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1,5,20", help="million envelopes per size")
    ap.add_argument("--shapes", default="demo,entropy",
                    help="data shapes: demo (the demo generator's envelopes, ~14x gzip), "
                         "entropy (high-entropy ids, hashes, user agents, free text, ~5x)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--nrt-millions-per-day", type=float, default=1.0)
    ap.add_argument("--nrt-ticks", type=int, default=288)
    ap.add_argument("--idle-repeat", type=int, default=10)
    ap.add_argument("--only", default="silver,nrt,plan,dag")
    ap.add_argument("--keep", action="store_true", help="keep DuckDB's output")
    args = ap.parse_args()
    bins = {"bench": Path(args.bin_dir) / "strata-bench", "strata": Path(args.bin_dir) / "strata-cli",
            "python": args.python}
    only = set(args.only.split(","))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {"machine": machine(), "started": dt.datetime.now(dt.timezone.utc).isoformat(),
               "threads": args.threads, "argv": sys.argv[1:]}
    if "silver" in only:
        results["silver"] = [bench_silver(args, bins, float(n), args.threads, shape)
                             for shape in args.shapes.split(",") for n in args.sizes.split(",")]
    if "nrt" in only:
        results["nrt"] = bench_nrt(args, bins, args.threads)
    if "plan" in only:
        log("plan: 1,000 models")
        results["plan"], _, _ = timed([bins["bench"], "plan", "--dir", Path(args.data) / "plan1000"])
    if "dag" in only:
        log("dag: 200 models, cap 20")
        results["dag"], _, _ = timed([bins["bench"], "dag", "--dir", Path(args.data) / "dag200"])
    results["load_after"] = os.getloadavg()
    (out / "results.json").write_text(json.dumps(results, indent=1))
    md = report(results)
    (out / "results.md").write_text(md)
    print(md)


def mb(n):
    return n / 1e6


def report(r):
    lines = []
    m = r["machine"]
    lines.append(f"Machine: {m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB, Linux {m['kernel']}; "
                 f"load average before {m['load_before'][0]:.2f}, after {r['load_after'][0]:.2f}; "
                 f"{r['threads']} threads for every engine.\n")
    if "silver" in r:
        lines.append("### Bronze to Silver (fact_payouts + fact_search_impressions)\n")
        lines.append("| shape | envelopes | files read | gz MB | NDJSON MB | engine | seconds | events/s | gz MB/s | NDJSON MB/s | peak RSS MiB | vs DuckDB | vs floor |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for s in r["silver"]:
            fl = s[f"floor_{r['threads']}"]
            ev, gz, raw = fl["lines"] + fl["bad_lines"], fl["gz_bytes"], fl["raw_bytes"]
            floor_s = fl["secs"]
            rows = [
                ("strata", s["strata"]["secs"], s["strata"]["peak_rss"]),
                ("DuckDB " + s["duckdb"]["version"], s["duckdb"]["secs"], s["duckdb"]["peak_rss"]),
                (f"floor, {r['threads']} threads", floor_s, None),
                ("floor, 1 thread", s["floor_1"]["secs"], None),
                ("inflate only, 1 thread", s["inflate_1"]["secs"], None),
            ]
            for name, secs, rss in rows:
                vs_d = s["duckdb"]["secs"] / secs
                vs_f = floor_s / secs
                lines.append(
                    f"| {s.get('shape', 'demo')} ({raw / gz:.1f}× gz) | {s['generated']['events'] / 1e6:.2f} M | {fl['files']} | {mb(gz):.0f} | {mb(raw):.0f} | {name} | "
                    f"{secs:.2f} | {ev / secs / 1e3:,.0f} K | {mb(gz) / secs:.0f} | {mb(raw) / secs:.0f} | "
                    f"{'' if rss is None else f'{rss / 2**20:.0f}'} | {vs_d:.2f}× | {vs_f:.0%} |")
        lines.append("")
        lines.append("Same rows (count and order-independent hash of every row, both Parquet outputs):")
        for s in r["silver"]:
            for t, c in s["same_rows"].items():
                lines.append(f"- {s.get('shape', 'demo')}, {s['millions']:g} M, {t}: strata {c['strata']['rows']:,} rows, DuckDB "
                             f"{c['duckdb']['rows']:,} rows, {'identical' if c['same'] else 'DIFFERENT'}")
        lines.append("")
    if "nrt" in r:
        n = r["nrt"]
        lines.append("### Near-real-time refresh (a day of 5-minute ticks, before and after)\n")
        lines.append("Ticks where the daily Gold models also ran are left out. *window*: every tick rereads "
                     "its Silver models' whole window (before `reads='arrived'`; what `run --from` still does); "
                     "*arrived*: Silver reads only the Bronze objects that arrived since its published version.\n")
        lines.append("| per refresh (median / mean) | window | arrived |")
        lines.append("|---|---|---|")
        per = {}
        for mode in ["window", "arrived"]:
            ticks = [t for t in n[mode]["ticks"] if t["other"] == 0]
            per[mode] = ticks
        def cell(mode, f):
            v = [f(t) for t in per[mode]]
            return f"{statistics.median(v) / 1e6:.2f} / {statistics.mean(v) / 1e6:.2f} MB"
        for name, f in [("arrived since the previous tick (gz)", lambda t: t["arrived"]),
                        ("strata: Silver (Bronze read) + ops (Parquet read)", lambda t: t["silver"] + t["ops"]),
                        ("  of which Silver", lambda t: t["silver"]),
                        ("  of which ops", lambda t: t["ops"]),
                        ("plan's view: 24 h of Bronze JSON rescanned (gz)", lambda t: t["rescan_24h"])]:
            lines.append(f"| {name} | {cell('window', f)} | {cell('arrived', f)} |")
        def total(mode, f):
            return sum(f(t) for t in per[mode])
        for label, f in [("Silver ÷ arrived", lambda t: t["silver"]),
                         ("whole refresh ÷ 24 h rescan", lambda t: t["silver"] + t["ops"])]:
            denom = (lambda t: t["arrived"]) if label.startswith("Silver") else (lambda t: t["rescan_24h"])
            fmt = "{:.2f}×" if label.startswith("Silver") else "{:.1%}"
            lines.append(f"| {label} (over the day) | {fmt.format(total('window', f) / max(1, total('window', denom)))} "
                         f"| {fmt.format(total('arrived', f) / max(1, total('arrived', denom)))} |")
        lines.append(f"| tick wall time, median | {statistics.median(t['secs'] for t in per['window']) * 1e3:.0f} ms "
                     f"| {statistics.median(t['secs'] for t in per['arrived']) * 1e3:.0f} ms |")
        lines.append("")
        lines.append(f"- idle `strata tick` (process start to exit): median {n['idle_tick']['median_ms']:.1f} ms, "
                     f"min {n['idle_tick']['min_ms']:.1f} ms (\"{n['idle_tick']['output']}\").")
        lines.append("")
    if "plan" in r:
        p = r["plan"]
        lines.append("### Scheduler overhead\n")
        lines.append(f"- {p['models']:,} generated models: load + parse {p['load_ms']:.1f} ms, render "
                     f"{p['render_ms']:.1f} ms, plan a tick {p['plan_ms']:.1f} ms; total {p['total_ms']:.1f} ms "
                     f"(median of {p['repeat']}).")
    if "dag" in r:
        d = r["dag"]
        lines.append(f"- {d['models']}-model DAG on a simulated Athena (latencies {d['latency_ms'][0]}–"
                     f"{d['latency_ms'][1]} ms, log-uniform, cap {d['cap']}, peak concurrency "
                     f"{d['peak_concurrency']}): makespan {d['makespan_ms']:.0f} ms; critical path "
                     f"{d['critical_path_ms']:.0f} ms, total work / {d['cap']} = {d['work_ms'] / d['cap']:.0f} ms, "
                     f"bound {d['bound_ms']:.0f} ms; {d['over_bound']:+.1%} over the bound.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
