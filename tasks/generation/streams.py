"""A causal LM reading one prefix per row, extended a token at a time, with its own KV cache.

STEER reads three streams at every decoding step: the expert on the prompt (the main stream, `generate`'s
own), the base model on the same prompt, and the expert on a negative prompt. The two extra streams live
here. Rows are left-padded: Llama-architecture models need explicit `position_ids` (the cumulative sum of
the attention mask) with left padding, since their forward pass does not derive them from the mask.

Where they cost time (SmolLM2-135M, one thread): a decoding step reads every weight once whatever the
batch, so the three streams cost about three main-stream steps; reading the negative prompts (k examples a
row, ~130 tokens against a 14-token prompt) costs as much again. So a padded prefix is read row by row
(no compute on padding) and only its last position goes through the 49,152-wide output head; and when the
expert is the base with only its top layers fine-tuned (the embedded expert artifact), the base stream
does not recompute the bottom layers the two share: `LayerTap` keeps the main stream's hidden state after
the last shared layer, and `TopLayersStream` runs only the base's own top layers on it. Both streams give
their final-normed hidden state (`next_hidden`), not logits: the processor folds the base's and the negative
stream's output heads into one matmul when the two heads are the same (tasks/generation/steering.py). Their KV
caches keep spare room (`RoomyLayer`), so a step writes its token in place instead of copying the whole
cache as `DynamicCache` does (about 1 s of the 32 steps at a 150-token negative prompt, batch 16).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch.nn.functional import log_softmax
from transformers.cache_utils import DynamicLayer


def left_padded(
    rows: list[list[int]], pad_id: int, device: str | torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask), both (rows, longest): each row's tokens at the right, pad and mask 0 to their left."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(rows), width), dtype=torch.long, device=device)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long, device=device)
            mask[i, width - len(row) :] = 1
    return ids, mask


def cache_argument(model: Any) -> str:
    """The forward argument that takes the KV cache: `cache` from transformers 5.x, `past_key_values`
    before."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def decoder_of(model: Any) -> Any:
    """The causal LM's decoder body (everything below the output head; its output is final-normed)."""
    return model.get_decoder()


def output_head(model: Any) -> torch.nn.Linear:
    """The causal LM's output head, which must be a linear layer (logits = hidden @ W^T + b)."""
    head = model.get_output_embeddings()
    if not isinstance(head, torch.nn.Linear):
        raise ValueError(f"{type(model).__name__}: the output head is {type(head).__name__}, not a Linear")
    return head


ROOM = 64  # spare positions a RoomyLayer allocates at a time


class RoomyLayer(DynamicLayer):
    """One layer's KV cache that keeps spare positions after its tokens, so appending a step's token writes
    it in place (amortised O(1)) where `DynamicLayer` concatenates the whole cache (O(length)) every step.
    `keys` and `values` are views of the filled part, so the attention reads exactly what it would read
    from a `DynamicLayer` holding the same tokens."""

    def __init__(self, keys: torch.Tensor | None = None, values: torch.Tensor | None = None) -> None:
        super().__init__()
        self._key_room: torch.Tensor | None = None
        self._value_room: torch.Tensor | None = None
        if keys is not None and values is not None:
            self._hold(keys, values)

    def _hold(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        self.device = keys.device
        self.is_initialized = True
        length = keys.shape[-2]
        self._key_room = keys.new_empty((*keys.shape[:-2], length + ROOM, keys.shape[-1]))
        self._value_room = values.new_empty((*values.shape[:-2], length + ROOM, values.shape[-1]))
        self._key_room[..., :length, :] = keys
        self._value_room[..., :length, :] = values
        self.keys = self._key_room[..., :length, :]
        self.values = self._value_room[..., :length, :]

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self._key_room is None:
            self._hold(key_states, value_states)
            return self.keys, self.values
        if self.keys._base is not self._key_room:  # replaced from outside (crop, select): hold it afresh
            self._hold(self.keys, self.values)
        length, new = self.keys.shape[-2], key_states.shape[-2]
        if length + new > self._key_room.shape[-2]:
            self._hold(self.keys, self.values)  # grown by ROOM, copied once every ROOM steps
            if length + new > self._key_room.shape[-2]:
                self._hold(torch.cat([self.keys, key_states], -2), torch.cat([self.values, value_states], -2))
                return self.keys, self.values
        self._key_room[..., length : length + new, :] = key_states
        self._value_room[..., length : length + new, :] = value_states
        self.keys = self._key_room[..., : length + new, :]
        self.values = self._value_room[..., : length + new, :]
        return self.keys, self.values


class CachedStream:
    """Next-token log-probabilities of `model` after each row's prefix; `advance` appends one token a row.

    The first call reads the whole (left-padded) prefix; every later call reads one new token through the
    KV cache, so a step costs one token's forward pass whatever the prefix length."""

    def __init__(self, model: Any, ids: torch.Tensor, mask: torch.Tensor) -> None:
        if ids.shape != mask.shape or ids.ndim != 2:
            raise ValueError(
                f"ids {tuple(ids.shape)} and mask {tuple(mask.shape)} must be one (rows, tokens)"
            )
        self.model = model
        self.head = output_head(model)
        self.prefix, self.mask = ids, mask
        self.cache: Any = None

    @torch.no_grad()
    def next_logprobs(self, new_tokens: torch.Tensor | None = None) -> torch.Tensor:
        """(rows, vocab) log-probabilities of the next token; `new_tokens` (rows,) extends every prefix by
        one token first (None on the first call, which reads the prefix)."""
        return log_softmax(self.head(self.next_hidden(new_tokens)).float(), dim=-1)

    @torch.no_grad()
    def next_hidden(self, new_tokens: torch.Tensor | None = None) -> torch.Tensor:
        """(rows, width): the decoder's final-normed hidden state at each row's last position, which the
        output head turns into the next token's logits; `new_tokens` as for `next_logprobs`."""
        if self.cache is None and new_tokens is not None:
            raise ValueError("the first call reads the prefix: give no new tokens")
        body = decoder_of(self.model)
        if self.cache is not None:
            if new_tokens is None:
                raise ValueError("every call after the first extends the prefix: give one token a row")
            feed = new_tokens.reshape(-1, 1).to(self.prefix.device)
            self.mask = torch.cat([self.mask, torch.ones_like(feed)], dim=1)
            positions = self.mask.sum(-1, keepdim=True) - 1
            out = body(
                input_ids=feed,
                attention_mask=self.mask,
                position_ids=positions,
                use_cache=True,
                **{cache_argument(body): self.cache},
            )
            self.cache = _cache_of(out)
            return out.last_hidden_state[:, -1]
        if not bool(self.mask.all()) and self.mask.shape[0] > 1:
            read = self._read_rows_one_by_one(body)
            if read is not None:
                return read
        out = body(
            input_ids=self.prefix,
            attention_mask=self.mask,
            position_ids=(self.mask.cumsum(-1) - 1).clamp_min(0),
            use_cache=True,
        )
        self.cache = with_room(_cache_of(out))
        return out.last_hidden_state[:, -1]

    def _read_rows_one_by_one(self, body: Any) -> torch.Tensor | None:
        """The first call on a padded batch: each row's own tokens in a forward pass of their own (nothing
        computed on padding), the caches then left-padded with zeros (masked) into one batch cache with
        spare room. None when the cache does not keep per-layer tensors (older transformers): read it
        padded."""
        hidden, caches = [], []
        for row, keep in zip(self.prefix, self.mask.bool(), strict=True):
            out = body(input_ids=row[keep].reshape(1, -1), use_cache=True)
            hidden.append(out.last_hidden_state[:, -1])
            caches.append(_cache_of(out))
            if not hasattr(caches[0], "layers"):
                return None
        width = self.prefix.shape[1]
        merged = caches[0]
        if any(type(layer) is not DynamicLayer for layer in merged.layers):
            return None  # sliding-window or other special layers: read it padded
        for index in range(len(merged.layers)):
            keys, values = (
                _left_padded_stack([getattr(c.layers[index], name) for c in caches], width)
                for name in ("keys", "values")
            )
            merged.layers[index] = RoomyLayer(keys, values)
        self.cache = merged
        return torch.cat(hidden)


def _left_padded_stack(parts: list[torch.Tensor], width: int) -> torch.Tensor:
    """(1, heads, length_i, dim) parts -> (rows, heads, width, dim), each part at the right, zeros left."""
    first = parts[0]
    out = first.new_zeros((len(parts), first.shape[1], width, first.shape[-1]))
    for i, part in enumerate(parts):
        out[i, :, width - part.shape[-2] :] = part[0]
    return out


def with_room(cache: Any) -> Any:
    """`cache` with each plain `DynamicLayer` replaced by a RoomyLayer holding the same tensors."""
    layers = getattr(cache, "layers", None)
    if layers is not None:
        for index, layer in enumerate(layers):
            if type(layer) is DynamicLayer and layer.is_initialized:
                layers[index] = RoomyLayer(layer.keys, layer.values)
    return cache


@torch.no_grad()
def uncached_logprobs(model: Any, prefix: list[int]) -> torch.Tensor:
    """(vocab,) next-token log-probabilities after one unpadded prefix, in one plain forward pass: what a
    cached stream must equal."""
    ids = torch.tensor([prefix], dtype=torch.long, device=next(model.parameters()).device)
    return log_softmax(model(input_ids=ids).logits[0, -1].float(), dim=-1)


def _cache_of(out: Any) -> Any:
    return out.cache if hasattr(out, "cache") else out.past_key_values


def decoder_stack(model: Any) -> list[Any] | None:
    """The decoder layers of a Llama-style causal LM (`model.model.layers`), or None."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    return list(layers) if layers is not None else None


@torch.no_grad()
def shared_bottom_layers(base: Any, expert: Any) -> int:
    """How many bottom decoder layers `expert` shares with `base` bit for bit, embeddings included (0 when
    the embeddings, the architecture or the first layer differ): the layers a base stream on the main
    stream's tokens need not recompute."""
    base_layers, expert_layers = decoder_stack(base), decoder_stack(expert)
    if base_layers is None or expert_layers is None or len(base_layers) != len(expert_layers):
        return 0
    if base.config.to_dict() != expert.config.to_dict():
        return 0
    if getattr(base.config, "_attn_implementation", None) != "sdpa":
        return 0  # the top-layer pass relies on SDPA's own causal masking (no mask is built)
    if not torch.equal(base.model.embed_tokens.weight, expert.model.embed_tokens.weight):
        return 0
    shared = 0
    for mine, theirs in zip(base_layers, expert_layers, strict=True):
        pairs = zip(mine.state_dict().values(), theirs.state_dict().values(), strict=True)
        if not all(torch.equal(a, b) for a, b in pairs):
            break
        shared += 1
    return shared if shared < len(base_layers) else len(base_layers) - 1


class LayerTap:
    """Keeps the output of one decoder layer from the last forward pass through it, while attached."""

    def __init__(self, layer: Any) -> None:
        self.value: torch.Tensor | None = None
        self._handle = layer.register_forward_hook(self._keep)

    def _keep(self, module: Any, args: Any, output: Any) -> None:
        self.value = output[0] if isinstance(output, tuple) else output

    def take(self) -> torch.Tensor:
        value, self.value = self.value, None
        if value is None:
            raise RuntimeError("no forward pass went through the tapped layer since the last take")
        return value

    def close(self) -> None:
        self._handle.remove()


class TopLayersStream:
    """The base model's next-token log-probabilities on the main stream's tokens, from the main stream's
    hidden state after the `start` bottom layers the two models share: only the base's layers from `start`
    up, its final norm and its head run, each with its own KV cache.

    The rows are the task's prompt repeated (no padding), so every layer's mask is plain causal and SDPA
    applies it itself; positions run on from the prompt. Equal to the base's full forward pass on the same
    tokens (tests/test_generation.py checks it token for token)."""

    def __init__(self, model: Any, start: int) -> None:
        from transformers import DynamicCache

        self.model, self.start = model, start
        self.head = output_head(model)
        self.cache = DynamicCache(config=model.config)
        self.cache.layers = [RoomyLayer() if type(x) is DynamicLayer else x for x in self.cache.layers]
        self.length = 0

    @torch.no_grad()
    def next_logprobs(self, hidden: torch.Tensor) -> torch.Tensor:
        """`hidden` (rows, new tokens, width): the shared layers' output on the tokens new since the last
        call (the whole prompt on the first)."""
        return log_softmax(self.head(self.next_hidden(hidden)).float(), dim=-1)

    @torch.no_grad()
    def next_hidden(self, hidden: torch.Tensor) -> torch.Tensor:
        """(rows, width): the base's final-normed hidden state at the last position, from `hidden` as for
        `next_logprobs`."""
        body = self.model.model
        steps = hidden.shape[1]
        positions = torch.arange(self.length, self.length + steps, device=hidden.device).unsqueeze(0)
        positions = positions.expand(hidden.shape[0], -1)
        self.length += steps
        rotary = body.rotary_emb(hidden, position_ids=positions)
        for layer in body.layers[self.start :]:
            hidden = layer(
                hidden,
                attention_mask=None,
                position_ids=positions,
                position_embeddings=rotary,
                use_cache=True,
                **{cache_argument(layer): self.cache},
            )
        return body.norm(hidden[:, -1])
