"""Datasets of passages: engraved systems paired with the audio that plays them."""
