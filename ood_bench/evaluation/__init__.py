"""Scoring a model on held-out problems: evaluation, metrics, support, expansion and tilt, failure analysis."""
