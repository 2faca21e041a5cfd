"""What is written to disk and read back: atomic writes, checkpoints, evaluation and run records."""
