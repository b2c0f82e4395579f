"""Retrieval evaluation: metrics and the paper's protocol."""
