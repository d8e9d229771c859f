"""MCQ methods: scorers that debias the letter distribution, and model edits that remove the anchor."""

from methods.mcq import anchored as anchored
from methods.mcq import debiasing as debiasing
