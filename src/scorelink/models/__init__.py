"""Encoders: passage model (CNN + GRU per modality); snippets are the networks' input units."""
