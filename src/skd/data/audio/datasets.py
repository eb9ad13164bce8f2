"""Audio datasets: any folder of WAV files labelled by a filename pattern, FSDD, TIMIT.

An utterance (one file) becomes one or more training sequences ("chunks") of ``seq_len``
spectrogram frames (see :mod:`skd.data.audio.features`):

- ``chunking="split"``: consecutive chunks of the whole utterance that start every
  ``chunk_hop`` frames (default ``seq_len``: no overlap), the remainder dropped (the TIMIT
  protocol: 200 ms chunks); a clip shorter than one chunk is an error.
- ``chunking="fit"``: exactly one chunk per utterance — the loudest ``seq_len``-frame window of
  a long clip, or the clip centred in digital silence when it is short.
  Suited to isolated words (FSDD), where the content label belongs to the whole utterance.

Features are standardised per bin with the mean and standard deviation of the training frames;
:class:`AudioData` keeps them (and the spectrogram spec) so decoded frames can be turned back
into sound. Per-chunk ``utterance`` ids let evaluation average embeddings over an utterance.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Literal, Sequence

import numpy as np
import torch

from ..base import Factor, SequenceData
from .features import SpectrogramSpec, features, fit_window, split_chunks
from .io import AudioError, read_audio, resample
from .splits import apply_split

log = logging.getLogger(__name__)

Chunking = Literal["split", "fit"]
AUDIO_EXTENSIONS = (".wav", ".sph")
DYNAMIC_GROUPS = frozenset({"content", "digit", "word", "phone", "sentence", "text"})
RESERVED_GROUPS = frozenset({"split", "take"})  # not factors: the split, and a repetition index
_TRAIN_NAMES = frozenset({"train", "training", "tr"})
_TEST_NAMES = frozenset({"test", "testing", "tst", "eval"})
FSDD_PATTERN = r"(?:^|/)(?P<content>\d)_(?P<speaker>[A-Za-z]+)_(?P<take>\d+)\.wav$"
FSDD_TEST_TAKES = 5  # the dataset's own convention: repetitions 0-4 are the test split

# The 24 speakers of TIMIT's core test set (2 male + 1 female per dialect region, DR1-DR8).
TIMIT_CORE_TEST = (
    "MDAB0", "MWBT0", "FELC0",  # DR1
    "MTAS1", "MWEW0", "FPAS0",  # DR2
    "MJMP0", "MLNT0", "FPKT0",  # DR3
    "MLLL0", "MTLS0", "FJLM0",  # DR4
    "MBPM0", "MKLT0", "FNLP0",  # DR5
    "MCMJ0", "MJDH0", "FMGD0",  # DR6
    "MGRT0", "MNJM0", "FDHC0",  # DR7
    "MJLN0", "MPAM0", "FMLD0",  # DR8
)
TIMIT_SENTENCE = re.compile(r"^(s[ix]\d+)\.wav$", re.IGNORECASE)  # SA1/SA2 (read by everyone) excluded
_MAX_NAMED = 3  # offending files named in one error message


@dataclass
class AudioData(SequenceData):
    """Standardised spectrogram chunks x (N, T, bins) plus what is needed to hear them again."""

    spec: SpectrogramSpec | None = None
    mean: torch.Tensor | None = None  # (bins,) per-bin mean of the raw training features
    std: torch.Tensor | None = None  # (bins,) per-bin standard deviation
    utterance: torch.Tensor | None = None  # (N,) int64 index into ``paths``
    offsets: torch.Tensor | None = None  # (N,) int64 first sample of each chunk in its (resampled) file
    paths: tuple[str, ...] = ()
    chunking: str = "split"

    def __post_init__(self) -> None:
        super().__post_init__()
        n = self.x.shape[0]
        if self.utterance is None:
            self.utterance = torch.arange(n)
        if self.offsets is None:
            self.offsets = torch.zeros(n, dtype=torch.long)
        if self.utterance.shape != (n,) or self.offsets.shape != (n,):
            raise ValueError(f"{self.name}: utterance and offsets must have shape ({n},)")

    def subset(self, idx: torch.Tensor | Sequence[int]) -> "AudioData":
        idx_t = torch.as_tensor(idx, dtype=torch.long)
        return AudioData(x=self.x[idx_t], labels={k: v[idx_t] for k, v in self.labels.items()}, factors=self.factors,
                         name=self.name, spec=self.spec, mean=self.mean, std=self.std, utterance=self.utterance[idx_t],
                         offsets=self.offsets[idx_t], paths=self.paths, chunking=self.chunking)

    def raw_features(self, x: torch.Tensor) -> torch.Tensor:
        """Undo the standardisation: (..., T, bins) -> features in the spec's units."""
        if self.mean is None or self.std is None:
            return x
        return x * self.std.to(x) + self.mean.to(x)


@dataclass(frozen=True)
class Entry:
    """One audio file to load: where it is, its labels (value strings) and its split."""

    path: Path
    labels: dict[str, str] = field(default_factory=dict)
    split: str = "train"
    groups: dict[str, str] = field(default_factory=dict)  # every named group of the pattern (take, split too)


def _short_list(items: Sequence[str]) -> str:
    more = f" (and {len(items) - _MAX_NAMED} more)" if len(items) > _MAX_NAMED else ""
    return "; ".join(items[:_MAX_NAMED]) + more


def _check_root(root: str | Path) -> Path:
    root = Path(root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"{root}: audio folder not found")
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a folder")
    return root


def list_audio_files(root: str | Path) -> list[Path]:
    """All files under ``root`` with an audio extension (.wav, .sph; any case), sorted."""
    root = _check_root(root)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
    if not files:
        raise ValueError(f"{root}: no audio files (.wav, .sph) in this folder or below it")
    return files


def _split_name(value: str, path: Path) -> str:
    v = value.lower()
    if v in _TRAIN_NAMES:
        return "train"
    if v in _TEST_NAMES:
        return "test"
    raise ValueError(f"{path}: split {value!r} read by the pattern must be train or test")


def scan_folder(
    root: str | Path, pattern: str, *, split_rule: Callable[[dict[str, str]], str] | None = None
) -> list[Entry]:
    """Entries for every audio file under ``root`` whose relative path matches ``pattern``.

    ``pattern`` is a regular expression searched in the path relative to ``root`` with ``/``
    separators, e.g. ``(?P<speaker>[^/]+)/(?P<content>\\w+)\\.wav$``. Every named group is a label,
    except ``split`` (train/test) and ``take`` (a repetition index). Files that do not match
    are skipped; a pattern that matches no file is an error. Without a ``split`` group (and no
    ``split_rule``) every file is training data.
    """
    try:
        rx = re.compile(pattern)
    except re.error as err:
        raise ValueError(f"data.pattern {pattern!r} is not a valid regular expression ({err})") from None
    if not rx.groupindex:
        raise ValueError(f"data.pattern {pattern!r} has no named groups; name the labels, e.g. (?P<speaker>[^/]+)")
    root = _check_root(root)
    files = list_audio_files(root)
    entries, incomplete = [], []
    for p in files:
        rel = p.relative_to(root).as_posix()
        m = rx.search(rel)
        if m is None:
            continue
        groups = m.groupdict()
        missing = [k for k, v in groups.items() if v is None or v == ""]
        if missing:
            incomplete.append(f"{rel} (no {', '.join(missing)})")
            continue
        split = split_rule(groups) if split_rule else _split_name(groups["split"], p) if "split" in groups else "train"
        entries.append(Entry(p, {k: v for k, v in groups.items() if k not in RESERVED_GROUPS}, split, groups))
    if incomplete:
        raise ValueError(f"{root}: data.pattern leaves named groups empty for {len(incomplete)} files: {_short_list(incomplete)}")
    if not entries:
        example = files[0].relative_to(root).as_posix()
        raise ValueError(f"{root}: data.pattern {pattern!r} matches none of the {len(files)} audio files "
                         f"(e.g. {example!r}; the pattern is searched in paths relative to the folder)")
    return entries


def fsdd_entries(root: str | Path) -> list[Entry]:
    """The Free Spoken Digit Dataset: ``{digit}_{speaker}_{take}.wav``; takes 0-4 are the test split."""
    return scan_folder(root, FSDD_PATTERN, split_rule=lambda g: "test" if int(g["take"]) < FSDD_TEST_TAKES else "train")


def _timit_base(root: Path) -> tuple[Path, Path]:
    """The TRAIN and TEST folders of a TIMIT copy (any letter case; root or root/TIMIT/...)."""
    candidates = [root, *[c for c in root.iterdir() if c.is_dir()]]
    candidates += [g for c in candidates[1:] for g in c.iterdir() if g.is_dir()]
    for base in candidates:
        kids = {c.name.lower(): c for c in base.iterdir() if c.is_dir()}
        if "train" in kids and "test" in kids:
            return kids["train"], kids["test"]
    raise ValueError(f"{root}: not a TIMIT folder (no TRAIN and TEST folders here or one level below)")


def timit_entries(root: str | Path, *, core_test: Iterable[str] = TIMIT_CORE_TEST) -> list[Entry]:
    """TIMIT per docs/EVALUATION.md §4: train = every TRAIN speaker, test = the 24 core-test speakers.

    Layout ``{TRAIN,TEST}/DR{1-8}/{SPEAKER}/{SENTENCE}.WAV`` in any letter case; the SA
    sentences (read by every speaker) are excluded, leaving 8 SI/SX sentences per speaker
    (192 core-test utterances). Labels: speaker, gender (first letter of the speaker id) and
    dialect region. Core speakers absent from the copy are logged; none present is an error.
    """
    root = _check_root(root)
    train_dir, test_dir = _timit_base(root)
    core = {s.upper() for s in core_test}
    entries: list[Entry] = []
    found_core: set[str] = set()
    for split, top in (("train", train_dir), ("test", test_dir)):
        for p in sorted(top.rglob("*")):
            if not p.is_file() or not TIMIT_SENTENCE.match(p.name):
                continue
            rel = p.relative_to(top).parts
            if len(rel) != 3:
                continue
            dialect, speaker = rel[0].upper(), rel[1].upper()
            if split == "test":
                if speaker not in core:
                    continue
                found_core.add(speaker)
            labels = {"speaker": speaker, "gender": speaker[:1], "dialect": dialect}
            entries.append(Entry(p, labels, split))
    if not any(e.split == "train" for e in entries):
        raise ValueError(f"{train_dir}: no TIMIT training utterances (expected DR*/SPEAKER/SI*.WAV or SX*.WAV)")
    if not found_core:
        raise ValueError(f"{test_dir}: none of the 24 TIMIT core-test speakers ({', '.join(TIMIT_CORE_TEST[:3])}, ...) found")
    missing = sorted(core - found_core)
    if missing:
        log.warning("TIMIT: %d of %d core-test speakers missing: %s", len(missing), len(core), ", ".join(missing))
    return entries


def _factor_kind(name: str) -> Literal["static", "dynamic"]:
    return "dynamic" if name.lower() in DYNAMIC_GROUPS else "static"


def read_entries(entries: Sequence[Entry], sample_rate: int = 0) -> list[tuple[np.ndarray, int]]:
    """(samples, rate) of every entry, resampled to ``sample_rate`` unless it is 0.

    One error names every unreadable file; with ``sample_rate=0`` files of different rates are an error.
    """
    out, bad = [], []
    for e in entries:
        try:
            out.append(read_audio(e.path, sample_rate or None))
        except AudioError as err:
            bad.append(str(err))
    if bad:
        raise AudioError(f"{len(bad)} of {len(entries)} audio files cannot be read: {_short_list(bad)}")
    if not sample_rate:
        rates = sorted({sr for _, sr in out})
        if len(rates) > 1:
            odd = [f"{e.path} ({sr} Hz)" for e, (_, sr) in zip(entries, out) if sr != out[0][1]]
            raise AudioError(f"audio files have different sample rates {rates}; set data.sample_rate to resample "
                             f"(first file {entries[0].path} is {out[0][1]} Hz; others: {_short_list(odd)})")
    return out


def build_audio_data(
    entries: Sequence[Entry],
    spec: SpectrogramSpec,
    seq_len: int,
    *,
    chunking: Chunking = "split",
    chunk_hop: int = 0,
    name: str = "audio",
    waves: Sequence[tuple[np.ndarray, int]] | None = None,
) -> tuple[AudioData, AudioData | None]:
    """(train, test) spectrogram chunks of ``entries``; test is None when no entry is a test file.

    Every file is resampled to ``spec.sample_rate``; ``waves`` are the entries' samples when
    already read (by :func:`read_entries`).
    """
    if seq_len < 2:
        raise ValueError(f"data.seq_len={seq_len} must be >= 2 frames per chunk")
    if chunking not in ("split", "fit"):
        raise ValueError(f"data.chunking={chunking!r} must be 'split' or 'fit'")
    if not entries:
        raise ValueError("no audio files to load")
    if waves is None:
        waves = read_entries(entries, spec.sample_rate)
    waves = [(x if sr == spec.sample_rate else resample(x, sr, spec.sample_rate), spec.sample_rate) for x, sr in waves]
    x, utt, offs = _chunk_waves(entries, waves, spec, seq_len, chunking, chunk_hop)  # x: (N, T, bins)
    utt_t = torch.tensor(utt, dtype=torch.long)
    splits = np.array([entries[u].split for u in utt])
    factors, labels = _entry_labels(entries, utt)
    train_idx = torch.from_numpy(np.flatnonzero(splits == "train"))
    test_idx = torch.from_numpy(np.flatnonzero(splits == "test"))
    if len(train_idx) == 0:
        raise ValueError("no training files: every matched file is in the test split")
    frames = x[train_idx].reshape(-1, x.shape[-1])
    mean, std = frames.mean(0), frames.std(0).clamp_min(1e-3)  # (bins,)
    full = AudioData(x=(x - mean) / std, labels=labels, factors=tuple(factors), name=name, spec=spec, mean=mean,
                     std=std, utterance=utt_t, offsets=torch.tensor(offs, dtype=torch.long),
                     paths=tuple(str(e.path) for e in entries), chunking=chunking)
    train = full.subset(train_idx)
    test = full.subset(test_idx) if len(test_idx) else None
    log.info("%s: %d train / %d test chunks of %d frames x %d bins from %d files", name, len(train_idx),
             len(test_idx), seq_len, x.shape[-1], len(entries))
    return train, test


def _chunk_waves(entries: Sequence[Entry], waves: Sequence[tuple[np.ndarray, int]], spec: SpectrogramSpec,
                 seq_len: int, chunking: Chunking, chunk_hop: int) -> tuple[torch.Tensor, list[int], list[int]]:
    """Spectrogram chunks (N, T, bins) of every file, each chunk's file index and sample offset."""
    chunks, utt, offs, short = [], [], [], []
    n_win = spec.samples_for(seq_len)
    for i, (e, (x, sr)) in enumerate(zip(entries, waves)):
        if chunking == "fit":
            clip, start = fit_window(x, n_win)
            c = features(clip, spec)[None]  # (1, T, bins)
            o = [start]
        else:
            c = split_chunks(features(x, spec), seq_len, chunk_hop or seq_len)  # (n, T, bins)
            o = [j * (chunk_hop or seq_len) * spec.hop_length for j in range(c.shape[0])]
            if c.shape[0] == 0:
                short.append(f"{e.path} ({x.size / sr:.3f} s)")
                continue
        chunks.append(c)
        utt += [i] * c.shape[0]
        offs += o
    if short:
        need = n_win / spec.sample_rate
        raise ValueError(f"{len(short)} clips are shorter than one chunk of {seq_len} frames ({need:.3f} s): "
                         f"{_short_list(short)}; lower data.seq_len or use data.chunking='fit'")
    return torch.cat(chunks), utt, offs


def _entry_labels(entries: Sequence[Entry], utt: list[int]) -> tuple[list[Factor], dict[str, torch.Tensor]]:
    """Declared factors (values in natural order) and per-chunk label ids from the files' labels."""
    names = sorted({k for e in entries for k in e.labels})
    for e in entries:
        if set(e.labels) != set(names):
            raise ValueError(f"{e.path}: labels {sorted(e.labels)} differ from the other files' {names}")
    factors, labels = [], {}
    for key in names:
        values = sorted({e.labels[key] for e in entries}, key=_natural_key)
        index = {v: j for j, v in enumerate(values)}
        factors.append(Factor(key, len(values), _factor_kind(key), tuple(values)))
        labels[key] = torch.tensor([index[entries[u].labels[key]] for u in utt], dtype=torch.long)
    return factors, labels


def _natural_key(v: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", v))


def spec_from_config(cfg, sample_rate: int) -> SpectrogramSpec:
    """The spectrogram spec of a :class:`~skd.config.DataConfig` at ``sample_rate``."""
    return SpectrogramSpec(sample_rate=sample_rate, n_fft=cfg.n_fft, win_length=cfg.win_length,
                           hop_length=cfg.hop_length, n_mels=cfg.n_mels)


def load_audio_dataset(cfg) -> tuple[AudioData, AudioData | None]:
    """(train, test) for ``data.name`` in audio / fsdd / timit (a :class:`~skd.config.DataConfig`)."""
    if cfg.name == "fsdd":
        entries = fsdd_entries(cfg.path)
    elif cfg.name == "timit":
        entries = timit_entries(cfg.path)
    elif cfg.name == "audio":
        entries = scan_folder(cfg.path, cfg.pattern)
    else:
        raise ValueError(f"data.name={cfg.name!r} is not an audio dataset")
    entries = apply_split(entries, cfg, cfg.path)
    waves = read_entries(entries, cfg.sample_rate)
    rate = cfg.sample_rate or waves[0][1]
    spec = spec_from_config(cfg, rate)
    seq_len = cfg.seq_len
    if seq_len == 0:
        lengths = [active_samples(x, sr) * rate / sr for e, (x, sr) in zip(entries, waves) if e.split == "train"]
        seq_len = auto_seq_len(lengths, spec, cfg.fit_coverage)
        log.info("data.seq_len=0: %d frames (%.3f s) hold %.0f %% of the training clips whole", seq_len,
                 spec.samples_for(seq_len) / rate, 100 * cfg.fit_coverage)
    return build_audio_data(entries, spec, seq_len, chunking=cfg.chunking, chunk_hop=cfg.chunk_hop, name=cfg.name,
                            waves=waves)


def active_samples(x: np.ndarray, sample_rate: int, *, floor_db: float = -40.0) -> int:
    """Samples from the first to the last 10 ms frame whose RMS is within ``floor_db`` of the
    loudest frame: the clip's duration without leading and trailing silence."""
    n = max(1, sample_rate // 100)
    frames = x[: x.size // n * n].reshape(-1, n) if x.size >= n else x.reshape(1, -1)
    rms = np.sqrt((frames.astype(np.float64) ** 2).mean(1))  # (F,)
    if rms.max() <= 0:
        return 0
    loud = np.flatnonzero(rms >= rms.max() * 10 ** (floor_db / 20))
    return int((loud[-1] - loud[0] + 1) * n) if frames.shape[0] > 1 else int(x.size)


def auto_seq_len(lengths: Sequence[float], spec: SpectrogramSpec, coverage: float = 0.95) -> int:
    """Frames per chunk that hold the ``coverage`` quantile of clip ``lengths`` (in samples at the
    spec's rate; :func:`active_samples` when loading) whole — a window of (T - 1)·hop samples, so T = 1 + ceil(n / hop) — at least 8
    frames (``data.seq_len = 0``)."""
    if not len(lengths):
        raise ValueError("data.seq_len=0 needs training clips to measure")
    n = float(np.quantile(np.asarray(lengths, dtype=np.float64), coverage, method="inverted_cdf"))
    return max(8, 1 + int(np.ceil(n / spec.hop_length)))

