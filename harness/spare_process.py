"""The next run's process, started ahead of its run: the local executor's workers and a Ray node's run
processes both take one.

Forking a process that holds the preloaded libraries takes milliseconds that a run would otherwise wait
for (harness/executors.py says how many). So once a run has its process, the next one is started on a
thread of its own while the run goes on, and waits on a pipe for its spec; every run still gets a fresh
process. `start` makes one: (process, this end of its pipe).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

Started = tuple[Any, Any]  # (a multiprocessing process, this end of the pipe it reads its spec from)


class SpareProcess:
    def __init__(self, start: Callable[[], Started]) -> None:
        self._start = start
        self.ready: Started | None = None  # the spare, once started
        self._forking: threading.Thread | None = None
        self._lock = threading.Lock()  # guards `ready`; the forking thread takes only this one
        self._closed = False

    def send(self, message: Any) -> Started:
        """A process given `message`: the spare when it is alive (waiting for a fork under way, which ends
        sooner than a new one would), else one started now; a spare that died in between is replaced."""
        process, conn = self._take()
        try:
            conn.send(message)
        except OSError:
            conn.close()
            process, conn = self._start()
            conn.send(message)
        return process, conn

    def fork_ahead(self) -> None:
        """Start the next process on a thread of its own, unless one is ready or under way."""
        if self.ready is not None or self.forking():
            return

        def fork() -> None:
            try:
                started = self._start()
            except Exception:  # the next run starts one itself, and says why if that fails too
                return
            with self._lock:
                if self.ready is None and not self._closed:
                    self.ready = started
                    return
            started[0].kill()

        self._forking = threading.Thread(target=fork, name="logitbench-spare", daemon=True)
        self._forking.start()

    def forking(self) -> bool:
        return self._forking is not None and self._forking.is_alive()

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a start under way to end."""
        if self._forking is not None:
            self._forking.join(timeout)

    def close(self) -> None:
        """Start no more, and kill the spare."""
        self._closed = True
        self.wait(timeout=30)
        with self._lock:
            spare, self.ready = self.ready, None
        if spare is not None:
            spare[0].kill()
            spare[0].join(timeout=5)

    def _take(self) -> Started:
        self.wait()
        with self._lock:
            spare, self.ready = self.ready, None
        if spare is not None and spare[0].exitcode is None:
            return spare
        if spare is not None:
            spare[1].close()
        return self._start()
