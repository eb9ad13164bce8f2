"""Layer 3, model: the network and what training optimises.

``autoencoder``: :class:`KoopmanAE` (frame encoder → LSTM → z, the Koopman fit, decoder);
``nets``: per-frame convolutional and MLP encoders/decoders; ``losses``: reconstruction,
prediction and spectral losses; ``precision``: bf16 autocast / channels_last execution plans.
"""
from .autoencoder import KoopmanAE, ModelOutput, TemporalLSTM, build_frame_nets

__all__ = ["KoopmanAE", "ModelOutput", "TemporalLSTM", "build_frame_nets"]
