"""Task families: one subpackage each, with its datasets, evaluation protocol and method protocol."""
