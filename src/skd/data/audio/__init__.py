"""Speech front end: WAV/SPHERE reading, spectrograms and Griffin-Lim, audio-folder datasets."""
from .datasets import (AudioData, Entry, TIMIT_CORE_TEST, build_audio_data, fsdd_entries, load_audio_dataset,
                       read_entries, scan_folder, timit_entries)
from .features import (SpectrogramSpec, features, features_to_audio, features_to_magnitude, griffin_lim, istft,
                       mel_filterbank, spectral_convergence, stft)
from .io import AudioError, read_audio, resample, write_wav

__all__ = [
    "AudioData", "Entry", "TIMIT_CORE_TEST", "build_audio_data", "fsdd_entries", "load_audio_dataset", "read_entries",
    "scan_folder", "timit_entries", "SpectrogramSpec", "features", "features_to_audio", "features_to_magnitude",
    "griffin_lim", "istft", "mel_filterbank", "spectral_convergence", "stft", "AudioError", "read_audio", "resample",
    "write_wav",
]
