"""A cache for expensive intermediates shared between runs (a trained teacher, a converted model).

An artifact is keyed like a run, by the canonical JSON of whatever determines it, and is built once: the
builder runs under a file lock, so concurrent runs that need the same artifact wait for the first one.
A local input path in the identity (a task's `path` or `teacher_checkpoint` parameter, as the run was
given it) is keyed by the content digest of what it names, so an edited input gets a new artifact.
A run with a thread count other than 1 (RunSpec.threads: float reductions split differently, so a trained
teacher comes out slightly different) keeps its artifacts apart, in `<key>.threads-N`: what a 2-thread run
built never stands in for what a 1-thread run would build, and the other way round. A builder fills a
scratch folder that is renamed into place when it is done; one killed mid-build leaves its scratch folder
behind, and the next builder of that key removes it.
An identity names what the artifact is made of, not the code that makes it: a change to a builder that
changes what it builds puts a builder version into that identity (the task's own version does not enter
artifact keys, so that tasks at different versions can share what has not changed).

Each artifact's `.complete` marker lists every file with its size, mtime and sha256. Reusing an artifact
costs a stat of each file; a file whose size or mtime changed is hashed, and an artifact whose content no
longer matches is rebuilt, with a warning. When a run fails after reusing artifacts, the worker asks
`discard_damaged` to hash them in full (bit rot keeps the mtime) and runs once more if one was damaged.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

from harness.assets import sha256_of

MARKER = ".complete"
SCRATCH = ".building."  # `<key><SCRATCH><random>`: the folder a builder fills before renaming it to `<key>`


class ArtifactCache:
    def __init__(
        self,
        root: Path,
        input_digests: dict[str, str] | None = None,
        warn: Callable[[str], None] | None = None,
        threads: int = 1,
    ) -> None:
        self.root = Path(root)
        self.threads = threads  # the run's torch/BLAS threads: part of every artifact's folder name
        # A run's local input paths, as its task was given them, -> their content digests.
        self.input_digests = dict(input_digests or {})
        self.warn = warn or (lambda message: None)
        self.reused: list[Path] = []  # artifacts this cache returned without building them

    def key(self, kind: str, identity: dict[str, Any]) -> str:
        keyed = _by_content(identity, self.input_digests)
        blob = json.dumps({"kind": kind, **keyed}, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    def path(self, kind: str, identity: dict[str, Any]) -> Path:
        return self.root / kind / (self.key(kind, identity) + threads_suffix(self.threads))

    def get_or_build(self, kind: str, identity: dict[str, Any], build: Callable[[Path], None]) -> Path:
        """The artifact's folder; `build(folder)` fills a temporary folder that is renamed into place."""
        final = self.path(kind, identity)
        if (final / MARKER).exists() and self._intact(final, hash_all=False, hash_moved=False):
            self.reused.append(final)
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(final) + ".lock"):
            if (final / MARKER).exists():
                if self._intact(final, hash_all=False, hash_moved=True):
                    self.reused.append(final)
                    return final
                self.warn(f"artifact {kind}/{final.name} no longer matches what was built: rebuilding it")
            prefix = final.name + SCRATCH
            _remove_leftovers(final.parent, prefix)
            scratch = Path(tempfile.mkdtemp(prefix=prefix, dir=final.parent))
            try:
                build(scratch)
                (scratch / "identity.json").write_text(json.dumps({"kind": kind, **identity}, default=str))
                manifest = {
                    rel: [st.st_size, st.st_mtime_ns, sha256_of(file)] for rel, file, st in _files(scratch)
                }
                (scratch / MARKER).write_text(json.dumps(manifest))
                if final.exists():  # a half-built leftover of a killed process, or a damaged artifact
                    shutil.rmtree(final)
                scratch.rename(final)
            finally:
                if scratch.exists():
                    shutil.rmtree(scratch)
        return final

    def discard_damaged(self) -> bool:
        """Hash every artifact this cache reused; unmark (so the next get rebuilds) each whose content does
        not match its manifest, with a warning. True when there was one."""
        damaged = False
        for folder in dict.fromkeys(self.reused):
            with FileLock(str(folder) + ".lock"):
                if (folder / MARKER).exists() and not self._intact(folder, hash_all=True, hash_moved=True):
                    (folder / MARKER).unlink()
                    self.warn(
                        f"artifact {folder.parent.name}/{folder.name} is damaged (its files no longer match "
                        "their checksums): rebuilt, and the run run once more"
                    )
                    damaged = True
        self.reused.clear()
        return damaged

    def _intact(self, folder: Path, hash_all: bool, hash_moved: bool) -> bool:
        """Whether `folder`'s files match its manifest by size and mtime; a file whose mtime moved (a copy)
        is hashed with `hash_moved` (under the lock: the new times are recorded) and fails otherwise;
        `hash_all` hashes every file. Artifacts built before manifests existed pass."""
        try:
            text = (folder / MARKER).read_text()
            manifest = json.loads(text) if text.strip() else None
        except (OSError, ValueError):
            return False
        if manifest is None:
            return True
        if not isinstance(manifest, dict):
            return False
        moved = False
        for rel, entry in manifest.items():
            try:
                size, mtime_ns, digest = entry
                st = (folder / rel).stat()
            except (OSError, TypeError, ValueError):
                return False
            if st.st_size != size:
                return False
            if st.st_mtime_ns != mtime_ns and not hash_moved:
                return False
            if hash_all or st.st_mtime_ns != mtime_ns:
                if sha256_of(folder / rel) != digest:
                    return False
                moved = moved or st.st_mtime_ns != mtime_ns
                entry[1] = st.st_mtime_ns
        if moved:  # same content, new times (a copied results folder): remember them, hash once
            tmp = folder / (MARKER + ".tmp")
            tmp.write_text(json.dumps(manifest))
            tmp.replace(folder / MARKER)
        return True


def artifact_id(kind: str, identity: dict[str, Any], components: tuple[Any, ...]) -> str:
    """`kind/key`, the folder under the cache root that `get_or_build(kind, identity, ...)` uses in a run of
    `components` (its task and method), known before the run: their local inputs are keyed by content
    digest as the worker keys them, through the same `ArtifactCache.key`. What `Task.artifact_keys` lists.
    A run with threads != 1 uses `kind/key.threads-N` instead; the planner adds that suffix itself."""
    from harness.spec import input_digests

    digests = {}
    for component in components:
        params = component.params()
        for name, digest in input_digests(type(component), params, "artifact"):
            digests[params[name]] = digest
    return f"{kind}/{ArtifactCache(Path(), digests).key(kind, identity)}"


def _remove_leftovers(folder: Path, prefix: str) -> None:
    """Remove the scratch folders of builders killed mid-build (kill -9, a timeout): only the holder of a
    key's lock makes that key's scratch folders, so under the lock every one there is a dead builder's."""
    try:
        with os.scandir(folder) as found:
            entries = [e for e in found if e.name.startswith(prefix) and e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return
    for entry in entries:
        shutil.rmtree(entry.path, ignore_errors=True)


def threads_suffix(threads: int) -> str:
    """What an artifact's folder name adds for a run of `threads` threads: nothing for 1 (the default, so
    the folders of 1-thread runs read as before), `.threads-N` otherwise. The planner adds it to the keys
    `Task.artifact_keys` lists, as the run's cache does."""
    return "" if threads == 1 else f".threads-{threads}"


def _by_content(value: Any, digests: dict[str, str]) -> Any:
    """`value` with every string that is one of the run's local input paths replaced by its digest."""
    if not digests:
        return value
    if isinstance(value, str):
        return digests.get(value, value)
    if isinstance(value, dict):
        return {k: _by_content(v, digests) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_by_content(v, digests) for v in value]
    return value


def _files(root: Path) -> list[tuple[str, Path, os.stat_result]]:
    out = []
    for folder, _, names in os.walk(root):
        for name in names:
            if name == MARKER:
                continue
            file = Path(folder) / name
            out.append((file.relative_to(root).as_posix(), file, file.stat()))
    return sorted(out)
