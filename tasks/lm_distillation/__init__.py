"""Distillation between language models: a teacher LM's vocabulary logits, stored sparsely, taught to a
smaller student LM with the same tokenizer."""
