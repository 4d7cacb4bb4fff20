"""The worker's allocator and collector settings, observed in glibc's account of its arenas
and in the collector's own callbacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROBE = """
import ctypes, ctypes.util, sys, threading
from pipeline.heap import keep_small
if sys.argv[1] == "small":
    assert keep_small()
together = threading.Barrier(6)
def work():
    together.wait()  # all alive at once: no thread inherits an arena another has left
    kept = [bytes(20_000 + i) for i in range(200)]  # malloc'd outside Python's small-object pool
    together.wait()
threads = [threading.Thread(target=work) for _ in range(6)]
for t in threads:
    t.start()
for t in threads:
    t.join()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.fopen.restype = ctypes.c_void_p
out = libc.fopen(sys.argv[2].encode(), b"w")
libc.malloc_info(0, ctypes.c_void_p(out))
libc.fclose(ctypes.c_void_p(out))
"""


def arenas(tmp_path: Path, mode: str) -> int:
    report = tmp_path / f"{mode}.xml"
    subprocess.run([sys.executable, "-c", PROBE, mode, str(report)], check=True, timeout=60)
    return report.read_text().count("<heap nr=")


def test_a_worker_keeps_to_two_arenas_where_threads_would_each_take_one(tmp_path: Path) -> None:
    assert arenas(tmp_path, "default") > 2  # each thread that allocates gets its own
    assert arenas(tmp_path, "small") <= 2


COLLECTOR_PROBE = """
import gc, sys
from pipeline.heap import settle
if sys.argv[1] == "settled":
    settle()
passes = []
gc.callbacks.append(lambda phase, info: phase == "start" and passes.append(info["generation"]))
batch = [{"label": str(i), "probabilities": [i]} for i in range(50_000)]  # a batch's containers
print(len(passes), gc.get_freeze_count())
"""


def collector_passes(mode: str) -> tuple[int, int]:
    out = subprocess.run(
        [sys.executable, "-c", COLLECTOR_PROBE, mode], check=True, timeout=60, capture_output=True
    )
    passes, frozen = out.stdout.split()
    return int(passes), int(frozen)


def test_a_settled_worker_collects_a_tenth_as_often_with_its_models_frozen() -> None:
    default_passes, default_frozen = collector_passes("default")
    settled_passes, settled_frozen = collector_passes("settled")
    assert default_passes >= 100 and default_frozen == 0  # 100,000 containers, one pass per 700
    assert settled_passes <= default_passes // 10 and settled_frozen > 1000
