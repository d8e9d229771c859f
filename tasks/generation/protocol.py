"""What a generation method provides: the logits processor `generate` samples through.

A method says which model's stream `generate` runs (`sampler`: the base or the expert) and returns a
transformers `LogitsProcessor` for one batch, given the models and, when it uses negative prompting (k > 0),
that batch's negative-prompt stream. The task owns everything else: the prompt, batching, top-k sampling,
the growing pool of negative examples, and the metrics of the texts. The built-in methods are STEER and its
ablations, one `SteerProcessor` each with its own weights (tasks/generation/steering.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from harness.components import Method

if TYPE_CHECKING:  # torch and transformers load only when a run generates, not when registries load
    from transformers import LogitsProcessor

    from tasks.generation.streams import CachedStream


@dataclass(frozen=True)
class Models:
    base: Any
    expert: Any
    # bottom decoder layers the expert shares with the base bit for bit (streams.shared_bottom_layers); the
    # base stream then starts from the main stream's hidden state after them. 0: run the base in full.
    shared_layers: int = 0

    @classmethod
    def of(cls, base: Any, expert: Any) -> Models:
        """The pair, with the layers they share measured."""
        from tasks.generation.streams import shared_bottom_layers

        return cls(base, expert, shared_bottom_layers(base, expert))


class GenerationMethod(Method):
    protocol_of = "generation"
    sampler: ClassVar[Literal["base", "expert"]] = "expert"

    def guidance(self) -> float:
        """g, the expert-guidance weight (0: none)."""
        return 0.0

    def negative_weight(self) -> float:
        """e, the negative-prompting weight (0: none)."""
        return 0.0

    def negatives(self) -> int:
        """k, the pool examples in each row's negative prompt (0: no negative prompt)."""
        return 0

    def processor(self, models: Models, negative: CachedStream | None) -> LogitsProcessor:
        """The processor for one batch; `negative` is the expert's stream over the batch's negative
        prompts (None when `negatives()` is 0)."""
        from tasks.generation.steering import SteerProcessor

        return SteerProcessor(
            self.guidance(),
            self.negative_weight(),
            models.base,
            negative,
            models.expert,
            models.shared_layers,
        )
