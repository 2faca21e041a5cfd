"""The model: the character vocabulary, the decoder-only transformer, its decode kernel and the sampling engine."""
