"""tempbench: measure temporary-file storage strategies and regenerate the decision matrix."""

__version__ = "0.1.0"
