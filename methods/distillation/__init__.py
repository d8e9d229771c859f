"""Distillation methods: losses on logits (some add heads to the student)."""

from methods.distillation import ce as ce
from methods.distillation import dhkd as dhkd
from methods.distillation import dkd as dkd
from methods.distillation import gld as gld
from methods.distillation import kd as kd
from methods.distillation import nkd as nkd
from methods.distillation import uskd as uskd
