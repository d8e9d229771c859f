"""A cache for expensive intermediates shared between runs (a trained teacher, a converted model).

An artifact is keyed like a run, by the canonical JSON of whatever determines it, and is built once: the
builder runs under a file lock, so concurrent runs that need the same artifact wait for the first one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock


class ArtifactCache:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def key(self, kind: str, identity: dict[str, Any]) -> str:
        blob = json.dumps({"kind": kind, **identity}, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    def path(self, kind: str, identity: dict[str, Any]) -> Path:
        return self.root / kind / self.key(kind, identity)

    def get_or_build(self, kind: str, identity: dict[str, Any], build: Callable[[Path], None]) -> Path:
        """The artifact's folder; `build(folder)` fills a temporary folder that is renamed into place."""
        final = self.path(kind, identity)
        if (final / ".complete").exists():
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(final) + ".lock"):
            if (final / ".complete").exists():
                return final
            scratch = Path(tempfile.mkdtemp(prefix=final.name + ".", dir=final.parent))
            try:
                build(scratch)
                (scratch / "identity.json").write_text(json.dumps({"kind": kind, **identity}, default=str))
                (scratch / ".complete").touch()
                if final.exists():  # a half-built leftover of a killed process
                    shutil.rmtree(final)
                scratch.rename(final)
            finally:
                if scratch.exists():
                    shutil.rmtree(scratch)
        return final
