"""scorelink: audio <-> sheet-music passage retrieval (Carvalho & Widmer, ISMIR 2023)."""

__version__ = "0.1.0"
