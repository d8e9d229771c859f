"""The mcq family: anchored bias in multiple-choice answers of causal LMs."""
