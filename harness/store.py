"""The result store: one JSON record per run, written atomically the moment the run ends.

A record is written to a temporary file, fsynced, and renamed over its final name, so a reader sees a
whole record or none, whatever kills the writer, and a power loss leaves the old record or the new one
(the folder is fsynced after the rename, so the new one stays). Each record carries the sha256 of its own
content (`checksum`); a record that fails validation (not UTF-8, truncated, edited by hand, key not
matching its spec) is reported and treated as absent, so the run is redone instead of crashing, and the
rejected file is kept beside the new record as `<key>.rejected-<time>.json`.

A failed or timed-out attempt never replaces an `ok` record: it is kept beside it as `<key>.failed.json`,
and the board goes on showing the `ok` one (`ResultStore.read`); so is one written while the record could
not be read (a read error is not damage: the record is not set aside). A later `ok` attempt replaces both.

Two processes never run one key at once: before running a key a process claims it (`claim`), an exclusive
kernel lock on one byte of the results folder's `runs/.claims` file, at an offset given by the key (an
open-file-description lock on Linux, a POSIX record lock elsewhere). The kernel drops the lock when its
holder exits, however it exits (kill -9 included), so a claim is never stale: the next process takes it
over at once, and a claim leaves no file behind. Writers of a key's record hold its claim.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import re
import struct
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.health import is_degenerate
from harness.spec import RunSpec

RECORD_SCHEMA = 1
STATUSES = ("ok", "failed", "timeout")
RESULTS_ENV = "LOGITBENCH_RESULTS"
FAILED_SUFFIX = ".failed.json"
SAMPLES_SUFFIX = ".samples.parquet"
CLAIMS_FILE = ".claims"
# Open-file-description locks belong to the open file, not the process (Linux); POSIX record locks are
# the fallback: per process, which is enough since each worker holds only its own run's claim.
_SETLK = getattr(fcntl, "F_OFD_SETLK", fcntl.F_SETLK)
_GETLK = getattr(fcntl, "F_OFD_GETLK", fcntl.F_GETLK)
_FLOCK = "hhqqi4x"  # struct flock: l_type, l_whence, l_start, l_len, l_pid (native alignment)
# A key's state on disk: (inode, mtime, size) of its record and of its kept failed attempt, or None.
Version = tuple[tuple[int, int, int] | None, tuple[int, int, int] | None]


def default_results_dir() -> Path:
    return Path(os.environ.get(RESULTS_ENV) or "logitbench-results")  # set but empty: the default, not .


class InvalidRecordError(ValueError):
    pass


class UnreadableRecordError(InvalidRecordError):
    """The system could not read the record's file just then (EIO, EACCES, too many open files): its
    content is unknown, so a writer must not take it for a damaged record and set it aside."""


@dataclass(frozen=True)
class Record:
    data: dict[str, Any]

    @property
    def key(self) -> str:
        return self.data["key"]

    @property
    def status(self) -> str:
        return self.data["status"]

    @property
    def spec(self) -> RunSpec:
        return RunSpec.from_json(self.data["spec"])

    def metric(self, name: str) -> float | None:
        entry = self.data["metrics"].get(name)
        return None if entry is None else entry["value"]

    @property
    def details(self) -> dict[str, Any]:
        """What the task kept beside its metrics (empty for records written before details existed)."""
        return self.data.get("details") or {}

    @property
    def degenerate(self) -> bool:
        """Whether the run's model predicted one class for nearly everything (harness/health.py)."""
        return is_degenerate(self.data.get("details"))

    @property
    def warnings(self) -> list[str]:
        """What the run noted and went on from (an artifact rebuilt, a detail that was not JSON)."""
        return self.data.get("warnings") or []

    @property
    def reason(self) -> str:
        error = self.data.get("error") or {}
        return f"{error.get('type', '')}: {error.get('message', '')}".strip(": ")


class Claim:
    """An exclusive claim on one key, held until `release` (or until the holding process exits)."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops its lock
            self._fd = None

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class ResultStore:
    def __init__(self, root: Path | str | None = None, defer_sync: bool = False) -> None:
        """`defer_sync`: a write leaves the fsync of the folders it changed for `sync` (a worker calls it
        after saying its run is done); the record's own file is always on disk before its rename."""
        self.root = Path(root) if root is not None else default_results_dir()
        self.runs_dir = self.root / "runs"
        self.artifacts_dir = self.root / "artifacts"
        self.defer_sync = defer_sync
        self._unsynced: list[Path] = []  # folders changed by a write with defer_sync, in order

    def path(self, key: str) -> Path:
        return self.runs_dir / key[:2] / f"{key}.json"

    def failed_path(self, key: str) -> Path:
        """Where the latest failed attempt is kept while an earlier `ok` record stands."""
        return self.runs_dir / key[:2] / f"{key}{FAILED_SUFFIX}"

    def claims_path(self) -> Path:
        return self.runs_dir / CLAIMS_FILE

    def samples_path(self, key: str, run_id: str) -> Path:
        """Where run `run_id` of `key` writes its per-example table, before its record (harness/samples.py):
        one file per attempt, so an attempt killed before its record never touches the table of the `ok`
        record that stands."""
        attempt = re.sub(r"[^A-Za-z0-9_-]", "", run_id)[:12] or "run"
        return self.runs_dir / key[:2] / f"{key}.{attempt}{SAMPLES_SUFFIX}"

    def samples_file(self, key: str, name: str) -> Path | None:
        """The table a record of `key` names (`record["samples"]["file"]`); None for a name that is not
        one of that key's tables (an edited record must not point anywhere else)."""
        if Path(name).name != name or not name.startswith(f"{key}.") or not name.endswith(SAMPLES_SUFFIX):
            return None
        return self.runs_dir / key[:2] / name

    def remove_samples(self, key: str, keep: str | None = None) -> None:
        """Remove the key's per-example tables except the one named `keep` (the standing record's)."""
        prefix = f"{key}."  # also the older name <key>.samples.parquet
        try:
            entries = list(os.scandir(self.runs_dir / key[:2]))  # not glob: a pattern per key is a regex
        except FileNotFoundError:
            return
        for entry in entries:
            name = entry.name
            if name.startswith(prefix) and name.endswith(SAMPLES_SUFFIX) and name != keep:
                Path(entry.path).unlink(missing_ok=True)

    # -- writing -------------------------------------------------------------------------------------

    def write(self, record: dict[str, Any]) -> Path:
        """Store `record` (with its checksum) and return where it went: its key's record, or beside an
        `ok` record that it must not replace. The caller holds the key's claim."""
        return self.put(record)[0]

    def put(self, record: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
        """`write`, returning also the record as stored (with its checksum). The record's file is on disk
        (fsync) before it replaces the old one, so a crash leaves the old record or the new one, never a
        damaged one; the fsync of its folder after the rename makes the new one stay (`defer_sync`)."""
        data = {k: v for k, v in record.items() if k != "checksum"}
        validate_record(data)
        try:
            data["checksum"] = record_checksum(data)
        except (TypeError, ValueError) as err:
            raise InvalidRecordError(f"record of {data['key']} is not plain JSON ({err})") from None
        final = self.path(data["key"])
        changed = [final.parent]
        if not final.parent.is_dir():
            final.parent.mkdir(parents=True, exist_ok=True)
            changed.insert(0, final.parent.parent)  # the new shard folder's own entry
        current = self._status_on_disk(final)
        target = final
        if current in ("ok", "unreadable") and data["status"] != "ok":
            target = self.failed_path(data["key"])
        elif current == "invalid":
            self.set_aside(final)
        _atomic_write(target, data)
        if target == final:
            self.failed_path(data["key"]).unlink(missing_ok=True)
            # Tables of earlier runs, and of attempts killed before their record, are not this record's.
            self.remove_samples(data["key"], keep=(data.get("samples") or {}).get("file"))
        self._unsynced += [f for f in changed if f not in self._unsynced]
        if not self.defer_sync:
            self.sync()
        return target, data

    def sync(self) -> None:
        """fsync the folders written to since the last sync: the renames in them are then on disk."""
        while self._unsynced:
            _sync_folder(self._unsynced.pop(0))

    def set_aside(self, path: Path) -> Path | None:
        """Move an unreadable record out of the way (kept for inspection); None when it is gone."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        aside = path.with_name(f"{path.name.removesuffix('.json')}.rejected-{stamp}.json")
        try:
            path.replace(aside)
        except FileNotFoundError:
            return None
        return aside

    def _status_on_disk(self, path: Path) -> str:
        """'none', 'invalid', 'unreadable' (a read error: maybe a good record), or the status of the valid
        record at `path`."""
        try:
            return _parse(path, path.name.removesuffix(".json")).status
        except FileNotFoundError:
            return "none"
        except UnreadableRecordError:
            return "unreadable"
        except InvalidRecordError:
            return "invalid"

    # -- claims --------------------------------------------------------------------------------------

    def claim(self, key: str) -> Claim | None:
        """Claim `key` for this process; None when another process holds it. Temporary files of the key
        left by a killed writer are removed, since only a claim holder writes them."""
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.claims_path(), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.fcntl(fd, _SETLK, struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, _offset(key), 1, 0))
        except OSError:  # EAGAIN / EACCES: held by another process
            os.close(fd)
            return None
        shard = self.path(key).parent
        if shard.is_dir():
            prefix = f".{key}."
            with os.scandir(shard) as entries:  # not glob: a pattern per key costs a regex compile
                for entry in entries:
                    if entry.name.startswith(prefix) and entry.name.endswith(".tmp"):
                        Path(entry.path).unlink(missing_ok=True)
        return Claim(fd)

    def is_claimed(self, key: str) -> bool:
        """Whether another live process holds `key`'s claim now."""
        try:
            fd = os.open(self.claims_path(), os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            probe = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, _offset(key), 1, 0)
            return struct.unpack(_FLOCK, fcntl.fcntl(fd, _GETLK, probe))[0] != fcntl.F_UNLCK
        finally:
            os.close(fd)

    def version(self, key: str) -> Version:
        """A cheap fingerprint of what is stored for `key`: it changes whenever a record is written."""
        out: list[tuple[int, int, int] | None] = []
        for path in (self.path(key), self.failed_path(key)):
            try:
                st = path.stat()
            except FileNotFoundError:
                out.append(None)
            else:
                out.append((st.st_ino, st.st_mtime_ns, st.st_size))
        return out[0], out[1]

    # -- reading -------------------------------------------------------------------------------------

    def read(self, key: str) -> Record | None:
        """The record the board shows for `key`, None when there is none; InvalidRecordError when it is
        unreadable."""
        try:
            return _parse(self.path(key), key)
        except FileNotFoundError:
            return None

    def read_failed_attempt(self, key: str) -> Record | None:
        """The latest failed attempt kept beside an `ok` record, if any (None also when unreadable)."""
        try:
            return _parse(self.failed_path(key), key)
        except (FileNotFoundError, InvalidRecordError):
            return None

    def read_many(self, keys: list[str]) -> tuple[dict[str, Record], list[str]]:
        """Records found by key, and a message for each invalid one (those count as absent)."""
        found: dict[str, Record] = {}
        problems: list[str] = []
        for key in keys:
            try:
                record = self.read(key)
            except UnreadableRecordError as err:  # the system's error, not the file's: nothing is set aside
                problems.append(f"{err}; it counts as absent in this command and is not set aside")
                continue
            except InvalidRecordError as err:
                problems.append(f"{err}; it will be redone (the file is then kept as {key}.rejected-*.json)")
                continue
            if record is not None:
                found[key] = record
        return found, problems

    def all_keys(self) -> list[str]:
        if not self.runs_dir.exists():
            return []
        return sorted(p.stem for p in self.runs_dir.glob("*/*.json") if "." not in p.stem)


def _offset(key: str) -> int:
    """The byte of the claims file that stands for `key` (60 bits of it: collisions only make one wait)."""
    if not all(c in "0123456789abcdef" for c in key[:15]):
        key = hashlib.sha256(key.encode()).hexdigest()
    return int(key[:15], 16)


def record_checksum(data: dict[str, Any]) -> str:
    """sha256 of the record's canonical JSON, its `checksum` field left out."""
    body = {k: v for k, v in data.items() if k != "checksum"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _parse(path: Path, key: str) -> Record:
    """The valid record in `path`; FileNotFoundError when there is none, InvalidRecordError naming the
    file and the problem otherwise."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as err:
        raise UnreadableRecordError(f"{path}: cannot be read ({err.strerror or err})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InvalidRecordError(f"{path}: not UTF-8 text (binary?) at byte {err.start}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InvalidRecordError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    except (ValueError, RecursionError) as err:
        raise InvalidRecordError(f"{path}: not valid JSON ({type(err).__name__})") from None
    try:
        validate_record(data)
    except InvalidRecordError as err:
        raise InvalidRecordError(f"{path}: {err}") from None
    if data["key"] != key:
        raise InvalidRecordError(f"{path}: record key {data['key']} does not match its file name")
    return Record(data)


def _atomic_write(final: Path, data: dict[str, Any]) -> None:
    # One line of JSON: the C encoder (an indented dump is the pure-Python one, 4x slower per record).
    text = json.dumps(data, sort_keys=True, allow_nan=False).encode()
    fd, tmp = tempfile.mkstemp(prefix=f".{data['key']}.", suffix=".tmp", dir=final.parent)
    try:
        try:
            view = memoryview(text)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        Path(tmp).replace(final)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _sync_folder(folder: Path) -> None:
    """fsync a folder (its entries: a rename or a new file in it) where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # not supported for folders here (e.g. some network file systems)
        pass
    finally:
        os.close(fd)


def finite_number(value: Any) -> bool:
    """A finite int or float that is not a bool (JSON's true would pass as 1): what a stored metric, a
    baseline's value or tolerance must be."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def validate_record(data: Any) -> None:
    """Raise InvalidRecordError naming the first field that is missing or wrong."""
    if not isinstance(data, dict):
        raise InvalidRecordError("record is not a JSON object")
    for field, kind in (("schema", int), ("key", str), ("spec", dict), ("status", str), ("metrics", dict)):
        if not isinstance(data.get(field), kind):
            raise InvalidRecordError(f"field '{field}' is missing or not a {kind.__name__}")
    if data["schema"] != RECORD_SCHEMA:
        raise InvalidRecordError(f"field 'schema' is {data['schema']}, expected {RECORD_SCHEMA}")
    if data["status"] not in STATUSES:
        raise InvalidRecordError(
            f"field 'status' is {data['status']!r}, expected one of {', '.join(STATUSES)}"
        )
    for field, kinds in (
        ("run_id", (str,)),
        ("started_at", (str,)),
        ("ended_at", (str,)),
        ("details", (dict,)),
        ("phases", (dict,)),
        ("error", (dict, type(None))),
        ("warnings", (list,)),
        ("samples", (dict,)),
        ("checksum", (str,)),
    ):
        if field in data and not isinstance(data[field], kinds):
            raise InvalidRecordError(f"field '{field}' is not a {' or '.join(k.__name__ for k in kinds)}")
    try:
        spec = RunSpec.from_json(data["spec"])
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise InvalidRecordError(f"field 'spec' is malformed ({err!r})") from None
    if spec.key != data["key"]:
        raise InvalidRecordError("field 'key' does not match the hash of field 'spec' (edited by hand?)")
    for name, entry in data["metrics"].items():
        if not isinstance(entry, dict) or "value" not in entry or "higher_is_better" not in entry:
            raise InvalidRecordError(f"metric '{name}' needs 'value' and 'higher_is_better'")
        value = entry["value"]
        if data["status"] == "ok" and not finite_number(value):
            raise InvalidRecordError(f"metric '{name}' of an ok record is not a finite number: {value!r}")
        if not isinstance(entry["higher_is_better"], bool) or not (
            value is None or (isinstance(value, int | float) and not isinstance(value, bool))
        ):
            raise InvalidRecordError(
                f"metric '{name}' needs a number or null, and higher_is_better true or false"
            )
    if "checksum" in data:
        try:
            matches = record_checksum(data) == data["checksum"]
        except (TypeError, ValueError):
            matches = False
        if not matches:
            raise InvalidRecordError(
                "field 'checksum' does not match the record's content (edited by hand, or damaged)"
            )
