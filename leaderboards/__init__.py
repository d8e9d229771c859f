"""Leaderboard definitions (YAML), saved baselines and papers' reported numbers, shipped as package data."""
