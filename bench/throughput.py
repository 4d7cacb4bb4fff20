"""Throughput, latency and peer comparison of the pipeline, on the real Kafka and FerretDB.

``make bench`` runs this with the services that ``scripts/services`` started (their addresses in
``TRIAGE_KAFKA_BOOTSTRAP`` / ``TRIAGE_MONGO_URI``). Every phase has its own topics, consumer
group and database, so phases never see each other's posts.

1. End to end: N generated posts (``bench/posts.py``) are produced to a raw topic first, then
   ``triage worker`` subprocesses (1, then 2) drain it into the store and queue. Progress is the
   consumer group's committed offsets, which the worker moves only after its store writes: the
   rate is posts committed per second from the first commit to the last, so model loading is not
   counted. CPU per post comes from the workers' /proc counters over that window, peak resident
   memory from the kernel's high-water mark of each worker (``VmHWM``).
2. Latency: two workers; posts are produced at a fixed rate; every 20th is a probe whose queue
   item is looked for by id every 20 ms. Latency is from just before ``send`` to the first poll
   that finds the item, i.e. when an agent could claim it.
3. Peers: ``bench/peers.py`` drives the same models one message at a time, and through Quix
   Streams, over the same raw topic, each for a fixed time, measured by committed offsets too.

``--quick`` runs 20,000 posts with shorter phases and prints; without it the results are also
written to ``docs/performance.json`` and this module's section of ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer
from kafka.errors import KafkaError
from pymongo import MongoClient

from bench.posts import post_bytes, texts
from pipeline.bus.kafka import KafkaBus

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
PERF_JSON = DOCS / "performance.json"
PERF_MD = DOCS / "performance.md"
SECTION = "## Throughput and latency"
PARTITIONS = 2
PROBE_EVERY = 20


def high_water_mb(pid: int) -> float | None:
    """The peak resident memory of a running process, in MB (``VmHWM`` in /proc)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


@dataclass
class Plan:
    posts: int
    e2e_cap_s: float
    latency_s: float
    peer_s: float
    offered: int = 2000


# The full run produces 200,000 posts; each end-to-end phase measures at most e2e_cap_s of
# sustained draining of that backlog (a 2-core machine does not drain it all in useful time).
FULL = Plan(posts=200_000, e2e_cap_s=300, latency_s=60, peer_s=90)
QUICK = Plan(posts=20_000, e2e_cap_s=45, latency_s=12, peer_s=25)


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, from /proc (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a service and its children: PostgreSQL serves each connection in a process of its
    own (living ones read directly, ended ones as the parent's reaped-children time)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    total = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            child = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(child[1]) == pid:
            total += cpu_seconds(int(proc.name))
    return total


STORE_SERVERS = ("ferretdb", "postgres")  # FerretDB 2 and the PostgreSQL under it


def store_server() -> str:
    """Names and versions of the store's servers, as they answer."""
    from pymongo import MongoClient

    uri = os.environ.get("TRIAGE_MONGO_URI", "")
    port = os.environ.get("TRIAGE_POSTGRES_PORT", "")
    try:
        with MongoClient(uri, serverSelectionTimeoutMS=3000) as client:
            info = client.admin.command("buildInfo")
        versions = subprocess.run(
            ["/usr/lib/postgresql/15/bin/psql", "-h", "127.0.0.1", "-p", port, "-U", "postgres",
             "-tAc", "SELECT extversion FROM pg_extension WHERE extname = 'documentdb'"
             " UNION ALL SELECT current_setting('server_version')"],
            capture_output=True, text=True, check=True,
        ).stdout.split("\n")
    except Exception:  # a missing figure, not a failed benchmark
        return "unknown"
    return (f"FerretDB {info.get('ferretdb', {}).get('version', '?')} (MongoDB wire"
            f" {info.get('version', '?')}) on DocumentDB {versions[0]} on PostgreSQL"
            f" {versions[1]}")


def service_pids() -> dict[str, int]:
    run_dir = Path(os.environ.get("TRIAGE_SERVICES_DIR", REPO / ".services"))
    out = {}
    for name in ("kafka", *STORE_SERVERS):
        pid_file = run_dir / name / "pid"
        if pid_file.exists():
            out[name] = int(pid_file.read_text())
    return out


@dataclass
class Run:
    """One phase's names, so that phases never share topics, groups or databases."""

    tag: str
    raw: str

    @property
    def group(self) -> str:
        return f"bench-{self.tag}"

    @property
    def database(self) -> str:
        return f"bench_{self.tag.replace('-', '_')}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "TRIAGE_TOPIC_RAW": self.raw,
            "TRIAGE_TOPIC_TRIAGED": f"bench.{self.tag}.triaged",
            "TRIAGE_TOPIC_DLQ": f"bench.{self.tag}.dlq",
            "TRIAGE_TOPIC_ALERTS": f"bench.{self.tag}.alerts",
            "TRIAGE_TOPIC_SPAM": f"bench.{self.tag}.spam",
            "TRIAGE_CONSUMER_GROUP": self.group,
            "TRIAGE_MONGO_DATABASE": self.database,
            "TRIAGE_PARTITIONS": str(PARTITIONS),
        }


@dataclass
class Progress:
    """Committed offsets of one consumer group over time."""

    samples: list[tuple[float, int]] = field(default_factory=list)

    def rate(self) -> tuple[float, int, float]:
        """(posts/s from the first commit to the last, posts in that window, window seconds)."""
        moved = [(t, n) for t, n in self.samples if n > 0]
        if len(moved) < 2:
            return 0.0, 0, 0.0
        first = moved[0]
        last = next(s for s in moved if s[1] == moved[-1][1])
        seconds = last[0] - first[0]
        posts = last[1] - first[1]
        return (posts / seconds if seconds > 0 else 0.0), posts, seconds


class Bench:
    def __init__(self, plan: Plan, quick: bool) -> None:
        self.plan = plan
        self.quick = quick
        self.bootstrap = os.environ["TRIAGE_KAFKA_BOOTSTRAP"]
        self.mongo_uri = os.environ["TRIAGE_MONGO_URI"]
        self.stamp = datetime.now(UTC).strftime("%H%M%S")
        self.bus = KafkaBus(self.bootstrap, partitions=PARTITIONS)
        self.admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        self.mongo: MongoClient[dict[str, Any]] = MongoClient(self.mongo_uri)
        self.results: dict[str, Any] = {}
        self.loads: dict[str, str] = {}
        self.logs = Path(tempfile.mkdtemp(prefix="triage-bench-"))

    # ------------------------------------------------------------ helpers

    def say(self, line: str) -> None:
        print(f"bench [{time.strftime('%H:%M:%S')}] {line} (load {load()})", flush=True)

    def producer(self) -> KafkaProducer:
        return KafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            linger_ms=5,
            batch_size=256 * 1024,
            compression_type="lz4",
        )

    def committed(self, group: str, topic: str) -> int:
        try:
            offsets = self.admin.list_group_offsets(group).get(group, {})
        except KafkaError:  # the group may not exist yet
            return 0
        return sum(max(o.offset, 0) for tp, o in offsets.items() if tp.topic == topic)

    def watch(
        self, run: Run, target: int, cap_s: float, stop: threading.Event | None = None
    ) -> Progress:
        """Sample committed offsets until ``target`` are committed, ``cap_s`` passes, or stop."""
        progress = Progress()
        deadline = time.monotonic() + cap_s
        while time.monotonic() < deadline and not (stop and stop.is_set()):
            n = self.committed(run.group, run.raw)
            progress.samples.append((time.monotonic(), n))
            if n >= target:
                break
            time.sleep(0.25)
        return progress

    def workers(self, run: Run, count: int) -> list[subprocess.Popen[bytes]]:
        triage = str(Path(sys.executable).with_name("triage"))
        return [
            subprocess.Popen(
                [triage, "worker"],
                env=run.env(),
                stdout=subprocess.DEVNULL,
                stderr=open(self.logs / f"{run.tag}-worker{i}.log", "wb"),
            )
            for i in range(count)
        ]

    def stop_workers(self, procs: list[subprocess.Popen[bytes]]) -> list[float]:
        """Ctrl-C each worker (it finishes its batch and commits); return peak RSS in MB each.

        The peak is the kernel's high-water mark of the worker's own memory (``VmHWM``), read
        just before the stop. Not ``wait4``'s ``ru_maxrss``: Linux carries that across
        ``exec`` from the forked copy of this process, so it reported the bench's own size."""
        peaks = [high_water_mb(p.pid) for p in procs]
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGINT)
        for p in procs:
            p.wait()
            if p.returncode not in (0, -signal.SIGINT, 130):
                raise RuntimeError(f"worker exited {p.returncode}; see {self.logs}")
        return [p for p in peaks if p is not None]

    def drop(self, run: Run) -> None:
        with contextlib.suppress(Exception):
            self.mongo.drop_database(run.database)

    # ------------------------------------------------------------ phases

    def produce_raw(self) -> str:
        raw = f"bench.{self.stamp}.raw"
        self.bus.ensure_topics([raw])
        posts = post_bytes(self.stamp, self.plan.posts)
        producer = self.producer()
        started = time.perf_counter()
        for value in posts:
            producer.send(raw, value)
        producer.flush()
        producer.close()
        seconds = time.perf_counter() - started
        avg = sum(map(len, posts)) / len(posts)
        self.say(
            f"produced {len(posts):,} posts ({avg:.0f} B avg) to {raw} in {seconds:.1f}s "
            f"({len(posts) / seconds:,.0f}/s, kafka-python producer)"
        )
        self.results["produce_posts_per_s"] = round(len(posts) / seconds)
        self.results["posts"] = len(posts)
        return raw

    def end_to_end(self, raw: str, count: int) -> None:
        run = Run(f"{self.stamp}-e2e{count}", raw)
        self.drop(run)
        procs = self.workers(run, count)
        services = service_pids()
        cpu: dict[str, float] = {}
        before: dict[int, float] = {}
        # The window starts at the first commit: take CPU readings then.
        progress = Progress()
        deadline = time.monotonic() + self.plan.e2e_cap_s + 120
        while time.monotonic() < deadline:
            n = self.committed(run.group, raw)
            now = time.monotonic()
            if n > 0 and not before:
                before = {p.pid: cpu_seconds(p.pid) for p in procs}
                before.update({pid: tree_cpu_seconds(pid) for pid in services.values()})
                deadline = now + self.plan.e2e_cap_s
            progress.samples.append((now, n))
            if n >= self.plan.posts:
                break
            if any(p.poll() is not None for p in procs):
                break
            time.sleep(0.25)
        after = {p.pid: cpu_seconds(p.pid) for p in procs}
        after.update({pid: tree_cpu_seconds(pid) for pid in services.values()})
        peaks = self.stop_workers(procs)
        rate, posts, seconds = progress.rate()
        if before and posts:
            cpu["workers"] = sum(after[p.pid] - before[p.pid] for p in procs)
            for name, pid in services.items():
                cpu[name] = after[pid] - before[pid]
        per_post = {k: round(v * 1000 / posts, 3) for k, v in cpu.items()} if posts else {}
        finished = progress.samples[-1][1] if progress.samples else 0
        self.loads[f"e2e_{count}"] = load()
        self.say(
            f"end to end, {count} worker(s): {posts:,} posts in {seconds:.1f}s = {rate:,.0f} "
            f"posts/s; CPU ms/post {per_post}; peak RSS {', '.join(f'{p:.0f}' for p in peaks)} MB"
            + ("" if finished >= self.plan.posts else f"; stopped at cap with {finished:,} done")
        )
        key = f"{count}_worker" if count == 1 else f"{count}_workers"
        self.results[f"e2e_posts_per_s_{key}"] = round(rate, 1)
        self.results[f"e2e_cpu_ms_per_post_{key}"] = per_post
        self.results[f"e2e_completed_{key}"] = finished
        self.results[f"worker_rss_mb_{key}"] = [round(p, 1) for p in peaks]
        self.drop(run)

    def latency(self, offered: int, tag: str) -> dict[str, Any]:
        """Produce-to-claimable times of probes at ``offered`` posts/s into two workers."""
        live = f"bench.{self.stamp}.{tag}"
        run = Run(f"{self.stamp}-{tag}", live)
        self.bus.ensure_topics([live])
        self.drop(run)
        n = int(offered * self.plan.latency_s)
        warm = 400
        pool = texts(n + warm, seed=99)
        values = post_bytes(f"{self.stamp}{tag}", n + warm, seed=99)
        procs = self.workers(run, 2)
        producer = self.producer()
        for v in values[:warm]:
            producer.send(live, v)
        producer.flush()
        # Both workers have joined and written when the warm-up is committed.
        warmed = self.watch(run, warm, cap_s=180)
        if warmed.samples[-1][1] < warm:
            self.stop_workers(procs)
            raise RuntimeError("latency phase: the workers did not take the warm-up posts")
        queue = self.mongo[run.database]["queue"]
        sent_at: dict[str, float] = {}
        lat: list[float] = []
        lock = threading.Lock()
        done = threading.Event()

        def watcher() -> None:
            while True:
                with lock:
                    pending = list(sent_at)
                if not pending:
                    if done.is_set():
                        return
                    time.sleep(0.02)
                    continue
                found = [d["_id"] for d in queue.find({"_id": {"$in": pending}}, {"_id": 1})]
                seen = time.monotonic()
                with lock:
                    for pid in found:
                        lat.append(seen - sent_at.pop(pid))
                if done.is_set() and (time.monotonic() > done_at[0] + 15 or not sent_at):
                    return
                time.sleep(0.02)

        done_at = [0.0]
        thread = threading.Thread(target=watcher, daemon=True)
        thread.start()
        started = time.monotonic()
        sent = 0
        for i, value in enumerate(values[warm:], start=warm):
            ahead = started + sent / offered - time.monotonic()
            if ahead > 0.005:
                time.sleep(ahead)
            probe = i % PROBE_EVERY == 0 and not pool[i][1]
            if probe:
                with lock:
                    sent_at[f"bench:{self.stamp}{tag}-{i}"] = time.monotonic()
            producer.send(live, value)
            sent += 1
        producer.flush()
        achieved = sent / (time.monotonic() - started)
        done_at[0] = time.monotonic()
        done.set()
        thread.join()
        missing = len(sent_at)
        producer.close()
        self.stop_workers(procs)
        lat.sort()

        def pct(q: float) -> float:
            return round(lat[min(len(lat) - 1, int(q * len(lat)))], 3) if lat else float("nan")

        self.loads[tag] = load()
        self.say(
            f"latency at {achieved:,.0f} posts/s offered ({len(lat)} probes, {missing} not "
            f"queued within 15 s): p50 {pct(0.5)}s p95 {pct(0.95)}s p99 {pct(0.99)}s "
            f"max {lat[-1] if lat else float('nan'):.3f}s"
        )
        self.drop(run)
        return {
            "offered_load_posts_per_s": round(achieved),
            "p50_latency_s": pct(0.50),
            "p95_latency_s": pct(0.95),
            "p99_latency_s": pct(0.99),
            "latency_probes": len(lat),
            "latency_probes_missing": missing,
        }

    def peer(self, raw: str, mode: str) -> float:
        run = Run(f"{self.stamp}-{mode.replace('-', '')}", raw)
        self.drop(run)
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "bench.peers", mode,
                "--topic", raw, "--out-topic", f"bench.{run.tag}.triaged",
                "--group", run.group, "--database", run.database,
                "--seconds", str(self.plan.peer_s + 30),
            ],
            env=run.env(),
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=open(self.logs / f"{run.tag}.log", "wb"),  # noqa: SIM115
        )
        # measure from the first commit for peer_s seconds
        first = self.watch(run, 1, cap_s=120)
        progress = self.watch(run, self.plan.posts, cap_s=self.plan.peer_s)
        progress.samples[:0] = first.samples[-1:]
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        rate, posts, seconds = progress.rate()
        if not posts:
            raise RuntimeError(f"peer {mode} committed nothing; see {self.logs}")
        self.loads[mode] = load()
        self.say(f"peer {mode}: {posts:,} posts in {seconds:.1f}s = {rate:,.1f} posts/s")
        self.drop(run)
        return rate

    # ------------------------------------------------------------ the run

    def run(self) -> dict[str, Any]:
        self.say(f"plan {self.plan}")
        raw = self.produce_raw()
        self.end_to_end(raw, 1)
        self.end_to_end(raw, 2)
        self.results.update(self.latency(self.plan.offered, "lat"))
        # The target's 2,000 posts/s may exceed what the machine drains, and then latency only
        # measures a growing backlog; half the measured 2-worker rate shows the pipeline's own.
        half = max(50, int(self.results["e2e_posts_per_s_2_workers"] / 2))
        self.results["at_half_capacity"] = self.latency(half, "half")
        per_message = self.peer(raw, "per-message")
        quix = self.peer(raw, "quix")
        ours = self.results["e2e_posts_per_s_1_worker"]
        self.results["peer_posts_per_s_per_message"] = round(per_message, 1)
        self.results["peer_posts_per_s_quixstreams"] = round(quix, 1)
        self.results["ratio_vs_per_message"] = round(ours / per_message, 1)
        self.results["ratio_vs_quixstreams"] = round(ours / quix, 1)
        rss = [
            *self.results.get("worker_rss_mb_1_worker", []),
            *self.results.get("worker_rss_mb_2_workers", []),
        ]
        self.results["worker_rss_mb"] = round(max(rss), 1) if rss else None
        self.results["claim_p99_ms"] = claim_p99_ms()
        for n in (2, 4):
            for key in (f"claim_p99_ms_{n}_processes", f"claim_p99_ms_{n}_processes_paced"):
                self.results[key] = claim_p99_ms(key)
        self.results["p99_latency_s_at_half_capacity"] = self.results["at_half_capacity"][
            "p99_latency_s"
        ]
        two = self.results.get("e2e_cpu_ms_per_post_2_workers", {})
        self.results["server_cpu_ms_per_post"] = (
            round(sum(two[k] for k in STORE_SERVERS if k in two), 3) if two else None
        )
        self.results["worker_cpu_ms_per_post"] = two.get("workers")
        self.results["store_server"] = store_server()
        self.results["load_average"] = self.loads
        return self.results


def claim_p99_ms(key: str = "claim_p99_ms") -> float | None:
    """A p99 claim time of the queue load test (bench/claims.py), if it has written one: its
    headline, or ``claim_p99_ms_<N>_processes[_paced]`` through N API processes (agents
    claiming back to back, or pausing between claims)."""
    for path in (DOCS / "claims.json", REPO / "bench" / "claims.json", PERF_JSON):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            value = json.loads(path.read_text()).get(key)
            if value is not None:
                return float(value)
    return None


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return (
        f"{os.cpu_count()} vCPU {model}, {mem_kb / 1024**2:.0f} GiB RAM, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 posts; print, write nothing")
    args = parser.parse_args()
    for name in ("TRIAGE_KAFKA_BOOTSTRAP", "TRIAGE_MONGO_URI"):
        if not os.environ.get(name):
            sys.exit(f"bench: {name} is not set; run it through `make bench`")
    plan = QUICK if args.quick else FULL
    started = datetime.now(UTC)
    results = Bench(plan, args.quick).run()
    results["date"] = started.strftime("%Y-%m-%d %H:%M UTC")
    results["machine"] = machine()
    results["command"] = "make bench QUICK=1" if args.quick else "make bench"
    print(json.dumps(results, indent=2))
    if not args.quick:
        from bench.report import write_report

        write_report(results, PERF_JSON, PERF_MD)
        # where a worker's time goes, next to the figures it explains
        subprocess.run(
            [
                sys.executable, "-m", "bench.profile_worker", "--posts", "5000",
                "--out", str(DOCS / "performance-profile.txt"),
            ],
            cwd=REPO,
            check=True,
        )
        print("bench: wrote docs/performance.json, .md and docs/performance-profile.txt")


if __name__ == "__main__":
    main()
