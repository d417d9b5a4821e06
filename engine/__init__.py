"""Doorways engine: VQGAN+CLIP juxtapositions. Knows nothing of Discord."""

__version__ = "0.1.0"
