"""glibc's allocator and Python's collector, set for a long-running worker.

Allocator: two arenas, not eight per core.

glibc gives a thread that allocates while another holds the main arena an arena of its own (the
Kafka client's threads, pymongo's), and memory freed in one arena is never reused by another, so
each keeps its own high-water mark resident. Measured with one ``triage worker`` on the real Kafka
and FerretDB over 60,000 posts (``docs/performance.md``): peak 385 MB with the defaults, 353-354
MB with two arenas (350 with one), the worker's CPU within run-to-run noise. Also mapping large
blocks on their own and trimming the heap eagerly (``M_MMAP_THRESHOLD``, ``M_TRIM_THRESHOLD``)
took the peak to 344 MB, but cost 15% of the classification stage's speed, so they stay off.

Collector: once the models are loaded, ``settle`` moves them out of its passes (``gc.freeze``),
and lets a batch's containers (about fifteen per post: predictions, their dicts and lists)
number 10,000 rather than 700 before a youngest-generation pass. Measured with
``bench/classifier_speed.py``: the collector took a fifth of the triage stage's CPU, 10,600-11,400
posts per CPU second against 12,700-13,700 with the higher threshold and 14,000 with it off
(``docs/performance.md``). Almost everything a batch makes is freed by reference counting as
the batch ends; only cycles wait for a pass, and 10,000 containers bound those to a few MB.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import platform

M_ARENA_MAX = -8
ARENAS = 2
YOUNGEST_THRESHOLD = 10_000


def keep_small() -> bool:
    """Apply the setting (before the process starts threads); False where libc is not glibc."""
    if platform.libc_ver()[0] != "glibc":
        return False
    return bool(ctypes.CDLL(ctypes.util.find_library("c")).mallopt(M_ARENA_MAX, ARENAS) == 1)


def settle() -> None:
    """Once everything that lives as long as the process is loaded: freeze it, and collect the
    youngest generation every 10,000 containers rather than every 700."""
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNGEST_THRESHOLD, middle, oldest)
