"""A worker's memory over a backlog: generated posts drained by one or more workers from the real
Kafka into the real store, each worker's resident peak (``VmHWM``) and the group's committed
posts every few seconds, as ``make bench`` reads the peak at the end of a phase.

    . .services/env && .venv/bin/python -m bench.worker_memory --posts 150000 --workers 2 \\
        [--set TRIAGE_BATCH_SIZE=1000 ...]

``--set`` puts a setting into the workers' environment, to compare one against another on the
same services (docs/performance.md, "Worker memory").
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from dataclasses import replace

from bench.throughput import QUICK, Bench, Run, high_water_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=150_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--cap-s", type=float, default=300, help="stop after this long")
    parser.add_argument("--every-s", type=float, default=10)
    parser.add_argument("--set", action="append", default=[], metavar="TRIAGE_NAME=VALUE")
    args = parser.parse_args()
    for pair in args.set:
        name, sep, value = pair.partition("=")
        if not sep or not name.startswith("TRIAGE_"):
            parser.error(f"--set wants TRIAGE_NAME=VALUE, not {pair!r}")
        os.environ[name] = value
    bench = Bench(replace(QUICK, posts=args.posts, e2e_cap_s=args.cap_s), quick=True)
    raw = bench.produce_raw()
    run = Run(f"{bench.stamp}-memory", raw)
    bench.drop(run)
    workers = bench.workers(run, args.workers)
    started = time.monotonic()
    try:
        while time.monotonic() - started < args.cap_s:
            time.sleep(args.every_s)
            done = bench.committed(run.group, raw)
            peaks = [high_water_mb(w.pid) for w in workers]
            shown = ", ".join("gone" if p is None else f"{p:.0f}" for p in peaks)
            print(
                f"{time.monotonic() - started:5.0f} s  {done:8,} posts committed  "
                f"peak RSS {shown} MB",
                flush=True,
            )
            if done >= args.posts or any(w.poll() is not None for w in workers):
                break
    finally:
        for w in workers:
            w.send_signal(signal.SIGINT)
        for w in workers:
            w.wait(60)
        bench.drop(run)


if __name__ == "__main__":
    main()
