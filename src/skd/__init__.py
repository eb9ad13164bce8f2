"""skd: Structured Koopman Disentanglement of sequential data.

Berman, Naiman, Azencot, "Multifactor Sequential Disentanglement via Structured Koopman
Autoencoders", ICLR 2023. Latents are row vectors: z[:, t+1] ≈ z[:, t] @ C.
"""
from .config import Config, ConfigError, DataConfig, LossConfig, ModelConfig, TrainConfig, load_config
from .data import Factor, SequenceData, load_dataset
from .koopman import EigSorted, eig_sorted, fit_koopman, from_eigen, project, select_static, to_eigen
from .model.losses import compute_losses, spectral_loss
from .model import KoopmanAE, ModelOutput
from .pipelines import ops  # skd.ops.encode / skd.ops.decode
from .pipelines.ops import KoopmanBasis, fit_basis, predict, reconstruct, sample, sample_part, swap, swap_latents
from .training.loop import TrainResult, load_run, train

__version__ = "0.1.0"

__all__ = [
    "Config", "ConfigError", "DataConfig", "LossConfig", "ModelConfig", "TrainConfig", "load_config",
    "Factor", "SequenceData", "load_dataset",
    "EigSorted", "eig_sorted", "fit_koopman", "from_eigen", "project", "select_static", "to_eigen",
    "compute_losses", "spectral_loss", "KoopmanAE", "ModelOutput",
    "KoopmanBasis", "fit_basis", "predict", "reconstruct", "sample", "sample_part", "swap", "swap_latents",
    "TrainResult", "load_run", "train",
]
