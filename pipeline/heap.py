"""glibc's allocator, set for a long-running worker: two arenas, not eight per core.

glibc gives a thread that allocates while another holds the main arena an arena of its own (the
Kafka client's threads, pymongo's), and memory freed in one arena is never reused by another, so
each keeps its own high-water mark resident. Measured with one ``triage worker`` on the real Kafka
and FerretDB over 60,000 posts (``docs/performance.md``): peak 385 MB with the defaults, 353-354
MB with two arenas (350 with one), the worker's CPU within run-to-run noise. Also mapping large
blocks on their own and trimming the heap eagerly (``M_MMAP_THRESHOLD``, ``M_TRIM_THRESHOLD``)
took the peak to 344 MB, but cost 15% of the classification stage's speed, so they stay off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_ARENA_MAX = -8
ARENAS = 2


def keep_small() -> bool:
    """Apply the setting (before the process starts threads); False where libc is not glibc."""
    if platform.libc_ver()[0] != "glibc":
        return False
    return bool(ctypes.CDLL(ctypes.util.find_library("c")).mallopt(M_ARENA_MAX, ARENAS) == 1)
