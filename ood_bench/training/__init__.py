"""Pretraining and post-training: the Lightning loop, the post-training context, the algorithm base and RL math."""
