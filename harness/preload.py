"""Imported once by the executor's forkserver: the heavy imports and caches that every worker inherits."""

import contextlib
import gc
import os
import sys

# No tqdm bars from inside a run (transformers' GGUF conversion draws one): tqdm reads TQDM_* from the
# environment once, when it is imported, which happens below. HF_HUB_DISABLE_PROGRESS_BARS=0 keeps them,
# as in harness.worker.quiet_progress_bars.
if os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS", "1") == "1":
    os.environ.setdefault("TQDM_DISABLE", "1")

import numpy  # noqa: F401

from harness.huge_pages import collapse_heap_in_background
from harness.registries import BUILTIN_METHOD_MODULES, BUILTIN_TASK_MODULES
from harness.worker import SYS_PATH_ENV, warm_up

# Python 3.11's forkserver drops the parent's import path it was given; the executor passes it here too.
if os.environ.get(SYS_PATH_ENV):
    sys.path[:] = os.environ[SYS_PATH_ENV].split(os.pathsep)

# harness.samples and harness.health are imported by runs when they finish: an import in every worker
# cost a no-op run 22 ms of its 57 here.
_HARNESS = ("harness.samples", "harness.health")
for _module in (
    "scipy.stats",
    "sklearn.base",
    "torch",
    *_HARNESS,
    *BUILTIN_TASK_MODULES,
    *BUILTIN_METHOD_MODULES,
):
    with contextlib.suppress(ImportError):
        __import__(_module)

warm_up()

# Move everything imported so far out of the collector's reach: without this, the first collection in
# each forked worker walks the whole inherited heap (torch, scipy, scikit-learn), about 0.2 s per run.
gc.freeze()

# Fewer page-table entries to copy at each worker's fork (harness/huge_pages.py): 18-20 -> 6.5 ms here.
collapse_heap_in_background()
