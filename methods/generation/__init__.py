"""Decoding methods for synthetic data: sampling from the base or the expert, STEER (arXiv 2308.07645) and
its two ablations, expert guidance only and negative prompting only."""

from methods.generation import base as base
from methods.generation import contrastive as contrastive
from methods.generation import expert as expert
from methods.generation import negative as negative
from methods.generation import steer as steer
