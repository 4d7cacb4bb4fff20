"""Claim latency under load: concurrent agents claiming every item of a large queue.

    . .services/env && .venv/bin/python bench/claims.py [--items 10000] [--agents 50]

Runs against the MongoDB-wire server at ``TRIAGE_MONGO_URI`` (FerretDB 2 on DocumentDB in
development) in a database of its own, dropped afterwards, through HTTP: ``triage serve --workers
N`` for each N of ``--processes`` (default 2 and 4), with every agent signed in and claiming
(``POST /api/v1/queue/next``) and resolving until the queue is empty, with no pause between
claims (``claim_p99_ms_<N>_processes``: capacity, since 50 claims are always in flight), then,
for each N again on a fresh queue, pausing a random 0 to 2 x ``--think-ms`` between claims (0
skips it) as agents who read and answer do, only far faster than people
(``claim_p99_ms_<N>_processes_paced``). Each run checks that no item was claimed twice and
none was lost; the figures go to the "Claim latency" section of docs/performance.md and to
docs/claims.json (which bench/throughput.py reads).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
from pymongo import MongoClient  # noqa: E402

from pipeline.priority import band_for  # noqa: E402
from pipeline.records import (  # noqa: E402
    Author,
    Post,
    Prediction,
    Priority,
    TriagedPost,
)
from pipeline.store.interface import Store  # noqa: E402
from pipeline.store.mongo import MongoStore  # noqa: E402

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
DESIGN = """\
How claims work now. A claim is `AgentQueue.next_for`: the agent's profile, the agents' loads,
the customers this agent helped last (a claim among their items first), then the authors of the
20 items a claim would reach first and who helped each of them last (`open_authors`, one
records read): those another agent with room helped are left for that agent; then
`MongoStore.claim_next`, then its audit entry. `claim_next` is one atomic `find_one_and_update`
on the `claim` index (status, priority descending, enqueued_at), with run-out leases and
snoozes looked up first (one `$or`, each branch through its own index, `lease` and `snooze`;
once a request, under the agent's skills alone, when none ran out, which is nearly always);
the agent's profile and everyone's come in one read: 9 statements a claim with affinity
customers (11 until 2026-12-05). `tests/test_store_indexes.py`
checks with `explain` on DocumentDB that each hot query reads its index. DocumentDB 0.108 does
not read a sort from an index (its ordered index kind needs an ordering operator its RUM
operator class lacks: "doesn't support ordering"), so a sorted claim reads every matching open
item: 27 ms at 10,000. A claim therefore looks first at priorities at or above the last claim's
less 1, then less 10, then the whole queue; the first item of a narrowed query is still the
true top, so the window decides only the cost (4 ms at 10,000 open items). A fresh process has
no window yet: its first claim under a routing reads the whole queue and the claims arriving
with it wait for that one's window (until 2026-12-05 each of 50 first claims sorted the queue;
`tests/test_claim_reads.py` counts this and the run-out reads on DocumentDB). With those two
changes the paced p99 through 4 processes went from 71.3 ms (60.0 after the first claims) to
43.1 ms (37.4), through 2 from 47.9 to 46.3 ms; the slowest first claim from 1.4-2.1 s to
0.8-1.4 s, the rest of which is a fresh process's first requests, not traced further. Back to
back the rows read 91 and 101 claims a second against 113 and 119 the day before; alternating
the two versions on 3,000 items (`--items 3000 --processes 2 --think-ms 0 --no-write`) gave
105 and 119 (new) against 108 and 102 (old): the spread of this machine, not a change. Three
things took
claims from 13 to 56 a second through 2 API processes on a 2,000-item queue on this machine:
that window; looking up affinity only for the customers a claim would reach (the old
exclusion list held every customer another agent had helped, 1,000 ids by mid-run, and made a
claim a 0.4 s `$nin`); and reading records in one reply (a read left with an open cursor holds a
PostgreSQL connection, which FerretDB then closes, and a fresh DocumentDB backend costs more
than the read: 30 new connections a second under claims). The machinery FerretDB v1 (SQLite)
needed stays gone: ledger tokens, the per-process claim index and its re-reads, grouped
inserts, background catch-up and compaction; API processes share nothing but the store.
DocumentDB runs a sorted findAndModify as a PostgreSQL statement that locks the row it picks;
racing claims wait on the top row (6 ms a claim under 50 agents) and can deadlock, and the
store runs an aborted one again.
"""
LABELS = ("low", "medium", "high", "critical")


def synthetic(n: int, seed: int = 7, source: str = "bench") -> list[TriagedPost]:
    """``n`` triaged posts with spread-out priorities, built directly (no models needed); from
    ``source`` ("replay" for items an agent resolves over HTTP: replies are recorded only)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        score = round(rng.uniform(0, 100), 2)
        urgency = LABELS[min(int(score // 25), 3)]
        post = Post(
            source=source,
            native_id=str(i),
            author=Author(id=f"u{i % 2000}", followers=rng.randint(0, 100_000)),
            text=f"bench post {i}",
            created_at=NOW - timedelta(seconds=rng.randint(0, 3600)),
        )
        pred = Prediction(label=urgency, confidence=0.9, probabilities={urgency: 0.9})
        out.append(
            TriagedPost(
                post=post,
                language="en",
                spam=Prediction(label="ham", confidence=0.99),
                is_spam=False,
                topic=Prediction(label="delivery", confidence=0.8),
                urgency=pred,
                sentiment=Prediction(label="negative", confidence=0.7),
                entities=[],
                redacted_text=post.text,
                priority=Priority(score=score, band=band_for(score), reasons=["bench"]),
                model_versions={"bench": "1"},
                timings_ms={},
                triaged_at=NOW,
            )
        )
    return out


@dataclass
class Run:
    latencies_ms: list[float] = field(default_factory=list)
    # every claim but each agent's first: those all start at once, on cold processes
    later_ms: list[float] = field(default_factory=list)
    claims: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    firsts_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def first_ms(self) -> float:
        """The slowest first claim of an agent: it waits for its process's claim index to
        load (once per process)."""
        return max(self.firsts_ms, default=0.0)

    def p(self, q: float, of: list[float] | None = None) -> float:
        ordered = sorted(self.latencies_ms if of is None else of)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def doubles(self) -> list[str]:
        return [item for item, agents in self.claims.items() if len(agents) > 1]


PASSWORD = "bench horse battery staple"


def agent_names(agents: int) -> list[str]:
    return [f"agent{i:02d}" for i in range(agents)]


def add_agents(store: Store, names: list[str]) -> None:
    """Dashboard users with the agent role, and their agent profiles (any topic or language)."""
    from dashboards.auth import make_account
    from pipeline.queue.agents import AgentProfile, Agents

    for name in names:
        store.save_user(make_account(name, PASSWORD, ["agent"]))
        Agents(store).put(AgentProfile(name=name))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def api_processes(uri: str, database: str, workers: int, data_dir: Path) -> Iterator[str]:
    """``triage serve --workers N`` on the store, on a free port; yields its URL once it answers
    and stops it afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k != "TRIAGE_KAFKA_BOOTSTRAP"}
    env.update(TRIAGE_MONGO_URI=uri, TRIAGE_MONGO_DATABASE=database, TRIAGE_DATA_DIR=str(data_dir))
    server = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "serve", "--port", str(port),
         "--workers", str(workers)],
        env=env, start_new_session=True, cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"triage serve exited with {server.returncode}")
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("triage serve did not answer within 120 s")
            time.sleep(0.2)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


class Browser:
    """One agent's connection to the API, kept alive, with its session cookie.

    Plain ``http.client``: the agents run on the machine they measure, and httpx spent about
    7 ms of CPU a request there (50 threads of it, 14 ms a claim and resolve, as much as the
    API itself), which the API processes and the store then lacked. An agent's browser runs on
    the agent's own machine."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=120)
        self.cookies: dict[str, str] = {}
        self.headers: dict[str, str] = {"Content-Type": "application/json"}

    def post(self, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        headers = dict(self.headers)
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        payload = json.dumps(body or {}).encode()
        try:
            self.conn.request("POST", path, payload, headers)
            response = self.conn.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            # the server closed the idle kept-alive connection (uvicorn: after 5 s) before it
            # read this request, so it was not served: send it again on a new connection
            self.conn.close()
            self.conn.request("POST", path, payload, headers)
            response = self.conn.getresponse()
        data = response.read()
        for cookie in response.headers.get_all("set-cookie") or []:
            name, _, value = cookie.split(";", 1)[0].partition("=")
            self.cookies[name.strip()] = value.strip()
        ok = response.status == 200 and data
        return response.status, json.loads(data) if ok else data.decode(errors="replace")

    def close(self) -> None:
        self.conn.close()


def claim_all_http(url: str, names: list[str], think_s: float = 0.0) -> Run:
    """Every agent signs in, then claims (``POST /api/v1/queue/next``) and resolves
    (``POST /api/v1/items/{id}/resolve``) until the queue answers 204, all at once, pausing a
    random 0 to 2 x ``think_s`` after each claim. Latency is the claim's round trip."""
    run = Run()
    lock = threading.Lock()
    start = threading.Barrier(len(names))

    def agent(name: str) -> None:
        rng = random.Random(name)
        mine: list[tuple[str, float]] = []
        browser = Browser(url)
        try:
            status, login = browser.post("/api/v1/login", {"name": name, "password": PASSWORD})
            if status != 200:
                raise RuntimeError(f"login: {status} {str(login)[:200]}")
            browser.headers["X-CSRF-Token"] = login["csrf_token"]
            start.wait()
            while True:
                t0 = time.perf_counter()
                status, got = browser.post("/api/v1/queue/next")
                elapsed = (time.perf_counter() - t0) * 1000
                if status != 200:
                    if status != 204:
                        raise RuntimeError(f"next: {status} {str(got)[:200]}")
                    break
                item_id = got["item"]["id"]
                mine.append((item_id, elapsed))
                if think_s:
                    time.sleep(rng.uniform(0, 2 * think_s))
                status, done = browser.post(
                    f"/api/v1/items/{item_id}/resolve", {"reply": f"answered by {name}"}
                )
                if status != 200:
                    raise RuntimeError(f"resolve {item_id}: {status} {str(done)[:200]}")
        except Exception as exc:  # any failure is a finding, reported by the caller
            start.abort()  # an agent that never signed in must not hold the others back
            with lock:
                run.errors.append(f"{name}: {type(exc).__name__}: {exc}")
        finally:
            browser.close()
        with lock:
            run.firsts_ms.extend(ms for _, ms in mine[:1])
            run.later_ms.extend(ms for _, ms in mine[1:])
            for item_id, ms in mine:
                run.claims[item_id].append(name)
                run.latencies_ms.append(ms)

    threads = [threading.Thread(target=agent, args=(name,)) for name in names]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run.wall_s = time.perf_counter() - t0
    return run


def write_section(text: str, path: Path = REPO / "docs" / "performance.md") -> None:
    """Replace (or add) this benchmark's own section, leaving other sections alone."""
    title = "## Claim latency"
    body = path.read_text() if path.exists() else "# Performance\n"
    if title in body:
        head, _, rest = body.partition(title)
        nxt = rest.find("\n## ")
        body = head + text.rstrip("\n") + "\n\n" + (rest[nxt + 1 :] if nxt >= 0 else "")
    else:
        body = body.rstrip("\n") + "\n\n" + text
    path.write_text(body.rstrip("\n") + "\n")


@dataclass
class Measured:
    """One run on a fresh queue, and what the store says afterwards."""

    run: Run
    items: int
    think_ms: float
    in_store: int
    load: tuple[float, float]
    processes: int = 1

    @property
    def lost(self) -> int:
        return self.items - len(self.run.claims)

    @property
    def ok(self) -> bool:
        run = self.run
        return not run.doubles and not self.lost and not run.errors and self.in_store == self.items

    def figures(self) -> dict[str, Any]:
        run = self.run
        return {
            "claim_p50_ms": round(statistics.median(run.latencies_ms), 1),
            "claim_p99_ms": round(run.p(0.99), 1),
            "claim_p99_ms_after_first": (
                round(run.p(0.99, run.later_ms), 1) if run.later_ms else None
            ),
            "claims": len(run.latencies_ms),
            "claims_per_s": round(len(run.latencies_ms) / run.wall_s),
            "wall_s": round(run.wall_s, 1),
            "first_claim_ms": round(run.first_ms),
            "double_claims": len(run.doubles),
            "lost": self.lost,
            "load_average": [round(self.load[0], 1), round(self.load[1], 1)],
        }


def measure(uri: str, items: int, agents: int, processes: int, think_ms: float) -> Measured:
    database = f"bench_claims_{uuid.uuid4().hex[:8]}"
    store = MongoStore(uri, database, timeout_ms=60_000)
    names = agent_names(agents)
    load_before = os.getloadavg()[0]
    try:
        store.ensure_schema()
        posts = synthetic(items, source="replay")  # replies are recorded, not sent
        for i in range(0, len(posts), 1000):
            store.write_batch(posts[i : i + 1000])
        del posts
        add_agents(store, names)
        with tempfile.TemporaryDirectory() as tmp, \
                api_processes(uri, database, processes, Path(tmp)) as url:
            run = claim_all_http(url, names, think_ms / 1000)
        load_after = os.getloadavg()[0]
        in_store = len(store.list_queue("resolved", limit=10**6))
    finally:
        store.close()
        with MongoClient(uri) as client:
            client.drop_database(database)
    measured = Measured(run, items, think_ms, in_store, (load_before, load_after), processes)
    f = measured.figures()
    print(f"processes={processes} think_ms={think_ms:g} claims={f['claims']} agents={agents}"
          f" items={items} wall_s={f['wall_s']} claims_per_s={f['claims_per_s']}"
          f" doubles={f['double_claims']} lost={f['lost']} errors={len(run.errors)}"
          f" resolved_in_store={in_store}")
    print(f"claim_p50_ms={f['claim_p50_ms']} claim_p99_ms={f['claim_p99_ms']}"
          f" claim_p99_ms_after_first={f['claim_p99_ms_after_first']}"
          f" first_claims_ms={f['first_claim_ms']}"
          f" load_average={load_before:.1f}->{load_after:.1f}")
    for error in run.errors[:5]:
        print(f"error: {error}", file=sys.stderr)
    return measured


def row(m: Measured) -> str:
    f = m.figures()
    pause = "none" if not m.think_ms else f"0 to {2 * m.think_ms:g} ms, {m.think_ms:g} ms mean"
    met = "**met**" if f["claim_p99_ms"] < 50 else "**not met**"
    return (
        f"| {m.processes} | {pause} | {f['claims']} in {f['wall_s']} s ({f['claims_per_s']}/s) |"
        f" {f['claim_p50_ms']} ms | {f['claim_p99_ms']} ms ({met}) |"
        f" {f['claim_p99_ms_after_first']} ms | {f['first_claim_ms']} ms |"
        f" {f['double_claims']} / {f['lost']} | {f['load_average'][0]} -> {f['load_average'][1]} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--processes", type=int, nargs="+", default=[2, 4],
                        help="API processes (triage serve --workers N) to spread the agents over;"
                        " one run for each")
    parser.add_argument("--think-ms", type=float, default=100.0,
                        help="mean pause between an agent's claims in a second run through"
                        " each number of processes (0: none)")
    parser.add_argument("--no-write", action="store_true", help="do not touch docs/")
    args = parser.parse_args()
    uri = os.environ.get("TRIAGE_MONGO_URI")
    if not uri:
        print("claims: TRIAGE_MONGO_URI is not set (make services-up; . .services/env)",
              file=sys.stderr)
        return 2
    runs = [measure(uri, args.items, args.agents, n, 0.0) for n in args.processes]
    if args.think_ms:
        runs += [measure(uri, args.items, args.agents, n, args.think_ms) for n in args.processes]
    if not args.no_write:
        write_docs(args, runs)
    return 0 if all(m.ok for m in runs) else 1


def write_docs(args: argparse.Namespace, runs: list[Measured]) -> None:
    headline = runs[0].figures()
    figures: dict[str, Any] = {
        **headline,
        "items": args.items,
        "agents": args.agents,
        "processes": runs[0].processes,
        "date": f"{datetime.now(UTC):%Y-%m-%d}",
    }
    for m in runs:
        paced = "_paced" if m.think_ms else ""
        figures[f"claim_p99_ms_{m.processes}_processes{paced}"] = m.figures()["claim_p99_ms"]
    if args.think_ms:
        figures["paced"] = [
            {"think_ms_mean": m.think_ms, "processes": m.processes, **m.figures()}
            for m in runs if m.think_ms
        ]
    (REPO / "docs" / "claims.json").write_text(json.dumps(figures, indent=2) + "\n")
    saturated = [m for m in runs if not m.think_ms]
    busy = (
        " The load average counts the benchmark's own work (the agents' threads, the API"
        " processes, FerretDB and PostgreSQL). Agents who claim back to back keep"
        f" {args.agents} claims in flight, so a claim waits {args.agents} divided by the claims"
        " a second (Little's law: "
        + ", ".join(f"{args.agents}/{m.figures()['claims_per_s']} = "
                    f"{args.agents / m.figures()['claims_per_s']:.2f} s" for m in saturated)
        + "): those rows measure capacity; the rows with pauses measure a claim below it."
        " Every agent's first claim starts at the same moment on processes that have not"
        " served one yet, so the first claims queue behind each other (the slowest is in its"
        " own column); the p99 over all claims counts them, and the column after it leaves them"
        " out. The agents run on this machine too, on plain `http.client` connections:"
        " until 2026-12-04 they used httpx, whose 50 threads took about as much CPU as the API"
        " processes (the rows then: 88 and 83 claims a second back to back, p99 877 and 912 ms;"
        " 56.2 ms with pauses through 2 processes)."
    )
    processes = " ".join(str(n) for n in args.processes)
    write_section(
        "## Claim latency\n\n"
        f"`. .services/env && .venv/bin/python bench/claims.py --items {args.items}"
        f" --agents {args.agents} --processes {processes} --think-ms {args.think_ms:g}` on"
        f" {datetime.now(UTC):%Y-%m-%d}, FerretDB v2.7 on DocumentDB 0.108 (PostgreSQL 15) on"
        f" loopback, {platform.machine()} with {os.cpu_count()} cores"
        " (load average in the table). Figures also in `docs/claims.json`. Each row is"
        f" {args.agents} agents signed in to `triage serve --workers N`, each claiming"
        " (`POST /api/v1/queue/next`) and resolving (`POST /api/v1/items/{id}/resolve`) until"
        f" all {args.items} items are resolved, all at once; latency is the claim's HTTP round"
        " trip. The target (a claim p99 under 50 ms) is read both ways: the rows with no pause"
        " and the rows with pauses each get a verdict." + busy + "\n\n"
        "| API processes | pause between an agent's claims | claims | p50 |"
        " p99 (target < 50 ms) | p99 after each agent's first | slowest first claim |"
        " double claims / lost | load average |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
        + "\n".join(row(m) for m in runs)
        + "\n\n"
        + DESIGN
    )


if __name__ == "__main__":
    sys.exit(main())
