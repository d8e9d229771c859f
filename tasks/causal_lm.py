"""Causal language models for the families that need one (lm retrofit, mcq): by asset name, local folder or
hub id. The embedded default is the real SmolLM2-135M asset, a GGUF file that transformers de-quantizes
(about 20 s); it is converted once into an ordinary checkpoint folder and reloaded from there (0.2 s).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.artifacts import ArtifactCache, artifact_id
from harness.errors import UserError

GGUF_ASSETS = {"smollm2-135m": "SmolLM2-135M-Instruct.Q4_1.gguf"}


CONVERTED = "causal-lm-converted"


def converted_identity(model: str) -> dict[str, str] | None:
    """What names the converted checkpoint of a GGUF asset; None for a model that needs no conversion."""
    return {"model": model, "file": GGUF_ASSETS[model]} if model in GGUF_ASSETS else None


def artifact_keys(models: tuple[str, ...], components: tuple[Any, ...]) -> tuple[str, ...]:
    """The converted checkpoints loading `models` in a run of `components` builds or reuses."""
    identities = [converted_identity(m) for m in dict.fromkeys(models)]
    return tuple(artifact_id(CONVERTED, i, components) for i in identities if i is not None)


def checkpoint_folder(model: str, artifacts: ArtifactCache) -> str:
    """A folder (or hub id) that `from_pretrained` loads: assets are converted once, paths and ids pass."""
    identity = converted_identity(model)
    if identity is not None:
        from harness.assets import resolve

        source = resolve(model)
        return str(
            artifacts.get_or_build(
                CONVERTED, identity, lambda out: _convert_gguf(source, GGUF_ASSETS[model], out)
            )
        )
    path = Path(model).expanduser()
    return str(path) if path.exists() else model


def _convert_gguf(folder: Path, file: str, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=file)
    model = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=file, dtype=torch.float32)
    model.hf_quantizer = None  # de-quantized weights: save them as a plain checkpoint
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))


def load(model: str, artifacts: ArtifactCache, device: str) -> tuple[Any, Any]:
    """(model in eval mode on `device`, tokenizer)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = checkpoint_folder(model, artifacts)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        lm = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).to(device).eval()
    except (OSError, ValueError) as err:
        raise UserError(
            f"model '{model}' could not be loaded ({str(err).splitlines()[0]}); give an asset name "
            "(smollm2-135m), a local checkpoint folder, or a hub id with a network"
        ) from None
    return lm, tokenizer


def output_embedding(model: Any) -> Any:
    """The (vocab, dim) output projection, whatever the architecture calls it."""
    return model.get_output_embeddings().weight


def final_hidden_states(model: Any, ids: Any) -> Any:
    """(batch, steps, dim) states the output head reads (after the final norm)."""
    out = model(input_ids=ids, output_hidden_states=True)
    return out.hidden_states[-1]
