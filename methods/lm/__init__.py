"""Output heads for language models."""

from methods.lm import adaptive_softmax as adaptive_softmax
from methods.lm import full as full
from methods.lm import low_rank as low_rank
from methods.lm import vq_logits as vq_logits
