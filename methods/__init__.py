"""Method families: one subpackage each, one module per method."""
