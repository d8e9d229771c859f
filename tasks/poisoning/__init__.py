"""The poisoning family: certified defenses that train models on hashed partitions and vote with logits."""
