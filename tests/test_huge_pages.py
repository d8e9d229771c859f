"""harness/huge_pages.py: which mappings are collapsed, and that collapsing keeps the memory's content."""

from __future__ import annotations

import hashlib
import mmap
import sys

import pytest

from harness.huge_pages import HUGE_PAGE, collapse_heap, collapsible_ranges

MAPS = """\
55d0a0000000-55d0a0400000 rw-p 00000000 00:00 0                          [heap]
7f0000100000-7f0000700000 rw-p 00000000 00:00 0
7f0000800000-7f0000900000 rw-p 00000000 00:00 0
7f0001000000-7f0001400000 rw-p 00010000 fd:01 123                        /usr/lib/libfoo.so
7f0002000000-7f0002400000 r--p 00000000 00:00 0
7f0003000000-7f0003400000 rw-s 00000000 00:05 77                         /dev/zero (deleted)
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
"""


def test_only_private_writable_anonymous_memory_in_whole_huge_pages_is_chosen():
    ranges = collapsible_ranges(MAPS)
    # the heap whole; the anonymous 6 MiB mapping from its first 2 MiB boundary (0x7f0000200000) to its
    # last (0x7f0000600000); the 1 MiB one holds no whole huge page; a library's data, read-only, shared
    # memory and the stack are left alone
    assert ranges == [(0x55D0A0000000, 4 * 2**20), (0x7F0000200000, 4 * 2**20)]
    assert all(start % HUGE_PAGE == 0 and length % HUGE_PAGE == 0 for start, length in ranges)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="MADV_COLLAPSE is Linux's")
def test_collapsing_keeps_every_byte():
    size = 16 * 2**20
    region = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    pattern = bytes(range(251)) * (size // 251) + bytes(size % 251)
    region[:] = pattern
    before = hashlib.sha256(region).hexdigest()
    collapse_heap()  # whatever the kernel accepts (nothing before Linux 6.1)
    assert hashlib.sha256(region).hexdigest() == before
    region.close()
