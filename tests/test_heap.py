"""The worker's allocator setting, observed in glibc's own account of its arenas."""

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
