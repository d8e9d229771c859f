"""The poisoning tasks end to end at smoke scale, on real digits and on small local files."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from harness.errors import UserError
from harness.registries import METHODS, TASKS
from harness.spec import make_spec
from harness.store import ResultStore
from harness.worker import WorkerOptions, run_spec
from tasks import images
from tasks.poisoning import partition


def _run(tmp_path, method, task="poisoning/digits", seed=0, **task_params):
    spec = make_spec(TASKS.get(task), METHODS.get(method), seed, "smoke", task_params)
    record = run_spec(spec, ResultStore(tmp_path), WorkerOptions(str(tmp_path)), "test")
    assert record["status"] == "ok", record["error"]
    return {k: v["value"] for k, v in record["metrics"].items()}


def test_dpa_and_dpa_roe_share_one_set_of_base_models(tmp_path):
    dpa = _run(tmp_path, "dpa")
    roe = _run(tmp_path, "dpa+roe")
    assert dpa["base_models_seconds"] == roe["base_models_seconds"], "the second run reused the artifact"
    assert len(list((tmp_path / "artifacts" / "poisoning-base-models").iterdir())) == 2  # folder + lock
    fa = _run(tmp_path, "fa")
    assert fa["base_models_seconds"] != dpa["base_models_seconds"], "FA trains its own k*d models"
    for metrics in (dpa, roe, fa):
        assert 0.5 < metrics["clean_accuracy"] <= 1.0
        assert metrics["certified_accuracy_r1"] <= metrics["clean_accuracy"]
        # the area sums certified accuracy over r = 0, 1, ...; at r = 0 that is the clean accuracy
        assert metrics["certified_auc"] >= metrics["clean_accuracy"]


def test_same_seed_same_certificates(tmp_path):
    a = _run(tmp_path / "a", "fa+roe", seed=1)
    b = _run(tmp_path / "b", "fa+roe", seed=1)
    drop = {"base_models_seconds", "certify_seconds"}
    assert {k: v for k, v in a.items() if k not in drop} == {k: v for k, v in b.items() if k not in drop}


@pytest.mark.parametrize("learner", ["mlp", "cnn"])
def test_batched_torch_learners_train_many_models_at_once(tmp_path, learner):
    metrics = _run(tmp_path, "dpa", learner=learner, epochs=60)
    assert metrics["clean_accuracy"] > 0.5  # chance is 0.1


def test_partition_depends_on_the_sample_alone():
    rng = np.random.default_rng(0)
    x = rng.random((50, 1, 4, 4)).astype(np.float32)
    full = partition.content_hash(x, salt=3)
    assert (partition.content_hash(x[10:20], salt=3) == full[10:20]).all()
    assert (partition.content_hash(x, salt=4) != full).any()
    groups = partition.dpa_groups(full, 5)
    assert sorted(np.concatenate(groups).tolist()) == list(range(50))
    reach = partition.fa_bucket_models(5, 3)
    assert reach.shape == (15, 3) and all(len(set(r)) == 3 for r in reach.tolist())
    fa = partition.fa_groups(full, 5, 3)
    assert sum(len(g) for g in fa) == 3 * 50, "each sample trains exactly d models"


def test_mnist_5k_reader_and_local_images(tmp_path):
    rng = np.random.default_rng(0)
    rows = np.hstack([rng.integers(0, 256, size=(20, 784)), np.repeat(np.arange(10), 2)[:, None]])
    csv = tmp_path / "mnist_5k.csv.gz"
    with gzip.open(csv, "wt") as fh:
        np.savetxt(fh, rows, fmt="%d", delimiter=",")
    data = images.load_mnist_5k(str(tmp_path))
    assert data.x.shape == (20, 1, 28, 28) and data.x.max() <= 1.0 and data.y.tolist()[:4] == [0, 0, 1, 1]
    npz = tmp_path / "set.npz"
    np.savez(npz, images=rng.integers(0, 256, size=(30, 6, 6)), labels=np.arange(30) % 3)
    local = images.load_local(str(npz))
    assert local.x.shape == (30, 1, 6, 6) and local.classes == 3
    bad = tmp_path / "bad.npz"
    np.savez(bad, pixels=np.zeros((3, 4, 4)))
    with pytest.raises(UserError, match=r"bad.npz: expected arrays 'x'"):
        images.load_local(str(bad))


def test_local_image_task_runs(tmp_path):
    from sklearn.datasets import load_digits

    digits = load_digits()
    npz = tmp_path / "digits.npz"
    np.savez(npz, x=digits.images[:600] * 15, y=digits.target[:600])
    metrics = _run(tmp_path, "dpa+roe", task="poisoning/images", path=str(npz))
    assert metrics["clean_accuracy"] > 0.5
