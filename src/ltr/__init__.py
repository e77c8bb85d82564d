"""ltr: learning to rank from research to production."""

__version__ = "0.1.0"
