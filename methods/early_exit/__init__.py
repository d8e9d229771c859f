"""Early-exit methods: exit heads, a training loss and an exit rule each."""

from methods.early_exit import deebert as deebert
from methods.early_exit import full as full
from methods.early_exit import pabee as pabee
from methods.early_exit import pondering as pondering
