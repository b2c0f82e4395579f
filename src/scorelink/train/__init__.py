"""Training: loss, batches of passages, the training loop and its configuration."""
