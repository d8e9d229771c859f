"""logitbench's engine: registries, run specs, execution, result store, leaderboards and comparison."""

__version__ = "0.1.0"
