"""Back the forkserver's heap with transparent huge pages, so that forking a worker from it is cheap.

A fork copies one page-table entry per 4 KiB page of the parent's private memory: the forkserver holds
~260 MiB of it once torch, scipy and scikit-learn are imported, and a fork took 18-20 ms here, 55 us per
MiB. A 2 MiB huge page is one entry: after MADV_COLLAPSE of the heap and the large anonymous mappings
(about 200 of the 260 MiB) a fork took 6.5 ms. A worker's write into a shared huge page splits only its
own mapping of it (copy-on-write stays per 4 KiB page), so the forkserver's pages stay huge.

MADV_COLLAPSE (Linux 6.1) copies the memory into new huge pages: about 0.65 s here, done on a thread of
the forkserver while it already serves forks. Where the kernel or the platform lacks it, nothing happens.
"""

from __future__ import annotations

import ctypes
import sys
import threading

MADV_COLLAPSE = 25  # linux/mman.h
HUGE_PAGE = 2 * 2**20


def collapsible_ranges(maps: str) -> list[tuple[int, int]]:
    """The 2 MiB-aligned parts of the private, writable, anonymous mappings (the heap included) listed
    in `maps` (the text of /proc/self/maps), as (start, length)."""
    out = []
    for line in maps.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        perms, path = fields[1], fields[5] if len(fields) > 5 else ""
        if not perms.startswith("rw") or perms[3] != "p" or path not in ("", "[heap]"):
            continue
        low, high = (int(x, 16) for x in fields[0].split("-"))
        start, end = -(-low // HUGE_PAGE) * HUGE_PAGE, high // HUGE_PAGE * HUGE_PAGE
        if end > start:
            out.append((start, end - start))
    return out


def collapse_heap() -> int:
    """Collapse this process's anonymous memory into huge pages where the kernel can; the bytes of the
    ranges it accepted (0 off Linux or before 6.1)."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
        with open("/proc/self/maps") as fh:
            ranges = collapsible_ranges(fh.read())
    except (OSError, AttributeError):
        return 0
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    # A range the kernel refuses (a thread's stack, memory that went away since the look) is skipped.
    return sum(length for start, length in ranges if madvise(start, length, MADV_COLLAPSE) == 0)


def collapse_heap_in_background() -> threading.Thread:
    thread = threading.Thread(target=collapse_heap, name="logitbench-huge-pages", daemon=True)
    thread.start()
    return thread
