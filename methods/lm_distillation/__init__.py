"""Language-model distillation methods: loss terms on next-token logits against stored top-k logits."""

from methods.lm_distillation import gld as gld
from methods.lm_distillation import kd as kd
from methods.lm_distillation import reverse_kd as reverse_kd
from methods.lm_distillation import sft as sft
