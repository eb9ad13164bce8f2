"""Per-frame encoders/decoders and the temporal LSTM wrappers."""
