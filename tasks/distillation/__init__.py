"""The distillation family: a teacher and a student on an image set; methods are losses on logits."""
