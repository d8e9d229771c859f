"""The early-exit family: a text classification set and an encoder; methods are heads, a loss and a rule."""
