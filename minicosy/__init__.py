"""minicosy — a compact reference implementation of CosyVoice 2."""

__version__ = "0.1.0"
