"""Local input files enter a run's key by their content, not by their name.

A task declares which of its parameters name local inputs (`local_inputs = ("path",)` on the class). When
such a parameter names an existing file or folder, the sha256 of its content stands in the key for the
path: editing a table makes a new key (the stale result is not reused), moving or renaming it does not
(the result is the same). A value that names nothing on disk (an empty string, an asset name, a hub id)
is its own identity, as any other parameter.

A folder's digest covers the relative path and content of every file under it, except names that start
with a dot (`.git`, `.cache`: what loaders never read); linked files and folders are followed, as loaders
follow them. Hashing a model folder takes seconds, so every
file's digest is kept in `$LOGITBENCH_CACHE/input-digests/` under its resolved path, with the size and
modification time it had: a file whose size and mtime are unchanged is not read again. A process also
remembers the digests it has seen: a file costs one stat a run when a board is planned, and a folder is
walked once a second at most (a board's many runs over one image folder walk it once). A worker checks
every input again before it runs, so an edit after planning is refused, never stored under the old key.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
import time
from pathlib import Path

from harness.assets import cache_root, sha256_of
from harness.errors import UserError

DIGEST_PREFIX = "sha256:"
# (resolved path) -> (signature of what was hashed, digest, when); a process-wide memo before the disk cache.
_MEMO: dict[str, tuple[tuple, str, float]] = {}
FOLDER_TRUST_S = 1.0  # how long a process trusts a folder's digest without walking the folder again


def local_path(value: object) -> Path | None:
    """The existing file or folder `value` names, or None when it names none (then it is not an input).
    UserError for `~name/...` when this machine has no user `name` (often `~data.csv` for `~/data.csv`)."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        path = Path(value).expanduser()
    except RuntimeError:  # pathlib's answer to an unknown user's home
        user = value[1:].split("/", 1)[0]
        raise UserError(
            f"{value!r}: '~{user}' would be the home folder of user {user!r}, who does not exist here "
            "(for your own home folder write ~/)"
        ) from None
    return path if path.exists() else None


def content_digest(path: Path) -> str:
    """`sha256:<hex>` of a file's bytes, or of a folder's files (relative names and contents)."""
    resolved = path.resolve()
    memo = _MEMO.get(str(resolved))
    if memo is not None and resolved.is_dir() and time.monotonic() - memo[2] < FOLDER_TRUST_S:
        return memo[1]
    files = _files(resolved)
    signature = tuple((rel, st.st_size, st.st_mtime_ns) for rel, _, st in files)
    if memo is not None and memo[0] == signature:
        _MEMO[str(resolved)] = (signature, memo[1], time.monotonic())
        return memo[1]
    cache_file = _cache_dir() / f"{hashlib.sha256(str(resolved).encode()).hexdigest()[:32]}.json"
    known = _read_cache(cache_file, resolved)
    digests: dict[str, list] = {}
    for rel, file, st in files:
        entry = known.get(rel)
        if entry is None or entry[:2] != [st.st_size, st.st_mtime_ns]:
            entry = [st.st_size, st.st_mtime_ns, sha256_of(file)]
        digests[rel] = entry
    if digests != known:
        _write_cache(cache_file, {"path": str(resolved), "files": digests})
    if resolved.is_dir():
        combined = hashlib.sha256()
        for rel in sorted(digests):
            combined.update(f"{rel}\0{digests[rel][2]}\n".encode())
        digest = DIGEST_PREFIX + combined.hexdigest()
    else:
        digest = DIGEST_PREFIX + digests[""][2]
    _MEMO[str(resolved)] = (signature, digest, time.monotonic())
    return digest


MAX_FILES = 1_000_000  # a folder input holding more is a mistake (`path: /`), not a dataset to hash
MAX_LINK_VISITS = 16  # how often one real folder may be entered through links (they can fan out)


def _files(root: Path) -> list[tuple[str, Path, os.stat_result]]:
    """(relative name, path, stat) of the file, or of every regular file under the folder ('' for a file).
    A FIFO or device is refused: reading one to hash it could block forever.

    A linked folder is walked as loaders read it (class folders linked into an image set). A link to a
    folder already on the way down, or to one that holds the root, is a cycle and is not entered; a real
    folder entered through links more than MAX_LINK_VISITS times (links that fan out, doubling at each
    level) or more than MAX_FILES files is refused rather than walked for hours. Only links need a
    realpath: a plain subfolder's real path is its parent's plus its name."""
    if not root.is_dir():
        st = root.stat()
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{root} is not a regular file or a folder")
        return [("", root, st)]
    out = []
    top = os.path.realpath(root)
    real_of: dict[str, str] = {str(root): top}
    parent_of: dict[str, str | None] = {str(root): None}
    link_visits: dict[str, int] = {}
    for folder, subfolders, names in os.walk(root, followlinks=True):
        kept = []
        for name in sorted(d for d in subfolders if not d.startswith(".")):
            sub = str(Path(folder) / name)  # as os.walk names it when it goes down
            if Path(sub).is_symlink():
                real = os.path.realpath(sub)
                if (
                    top == real
                    or top.startswith(real.rstrip(os.sep) + os.sep)
                    or _above(real, folder, real_of, parent_of)
                ):
                    continue
                link_visits[real] = link_visits.get(real, 0) + 1
                if link_visits[real] > MAX_LINK_VISITS:
                    raise OSError(f"{root}: links reach {real} more than {MAX_LINK_VISITS} times")
            else:
                real = str(Path(real_of[folder]) / name)
            real_of[sub], parent_of[sub] = real, folder
            kept.append(name)
        subfolders[:] = kept
        for name in names:
            file = Path(folder) / name
            if name.startswith("."):
                continue
            try:
                st = file.stat()
            except FileNotFoundError:  # a dangling link: nothing a loader could read
                continue
            if stat.S_ISREG(st.st_mode):
                out.append((file.relative_to(root).as_posix(), file, st))
                if len(out) > MAX_FILES:
                    raise OSError(f"{root} holds more than {MAX_FILES:,} files; expected a dataset folder")
    return sorted(out, key=lambda item: item[0])


def _above(real: str, folder: str, real_of: dict[str, str], parent_of: dict[str, str | None]) -> bool:
    """Whether `real` is the real path of `folder` or of a folder above it on the way down."""
    at: str | None = folder
    while at is not None:
        if real_of[at] == real:
            return True
        at = parent_of[at]
    return False


def _cache_dir() -> Path:
    return cache_root() / "input-digests"


def _read_cache(cache_file: Path, resolved: Path) -> dict[str, list]:
    """The cached per-file entries, empty when there are none or the cache file is damaged (it is only a
    cache: a damaged one costs a re-hash, never a wrong digest, since every entry is checked by stat)."""
    try:
        data = json.loads(cache_file.read_bytes())
        files = data["files"] if data.get("path") == str(resolved) else {}
        return {
            rel: entry
            for rel, entry in files.items()
            if isinstance(entry, list) and len(entry) == 3 and isinstance(entry[2], str)
        }
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


def _write_cache(cache_file: Path, data: dict) -> None:
    """Atomically; a cache that cannot be written (read-only home) only costs hashing again next time."""
    tmp = None
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".digest.", suffix=".tmp", dir=cache_file.parent)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
        Path(tmp).replace(cache_file)
    except OSError:
        pass
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
