"""The generation family: synthetic data from a base LM and a fine-tuned expert; methods are logits
processors for decoding (STEER and its ablations), measured for diversity, fidelity and coherence."""

from tasks.generation import tasks as tasks
from tasks.generation.protocol import GenerationMethod as GenerationMethod
