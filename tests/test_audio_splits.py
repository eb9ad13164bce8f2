"""Train/test splits of audio folders (skd.data.audio.splits): values, fractions, list files, speakers."""
from __future__ import annotations

import wave
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from skd.data.audio.datasets import auto_seq_len, fsdd_entries, scan_folder
from skd.data.audio.features import SpectrogramSpec
from skd.data.audio.splits import apply_split, split_by_fraction
from skd.config import ConfigError, DataConfig, load_config
from skd.data import load_dataset

FSDD = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "fsdd"
FSDD = FSDD if FSDD.is_dir() else Path("/work/shared/data/fsdd")
PATTERN = r"(?P<speaker>[^/]+)/(?P=speaker)-(?P<word>[a-z]+)-(?P<take>\d+)\.wav$"
WORDS = ("yes", "no")


def write_wav(path: Path, seconds: float, f0: float, sr: int = 8000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(sr * seconds)) / sr
    x = (0.3 * np.sin(2 * np.pi * f0 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(x.tobytes())


def make_corpus(root: Path, speakers: int = 4, takes: int = 6, seconds: float = 0.1) -> Path:
    """``{speaker}/{speaker}-{word}-{take}.wav``: takes 1..takes of 2 words per speaker."""
    for s in range(speakers):
        for w, word in enumerate(WORDS):
            for take in range(1, takes + 1):
                write_wav(root / f"s{s}" / f"s{s}-{word}-{take}.wav", seconds, 150.0 * (s + 1) + 40 * w)
    return root


def cfg(root: Path, **kw) -> DataConfig:
    return DataConfig(name="audio", path=str(root), pattern=PATTERN, seq_len=4, n_fft=64, hop_length=32, **kw)


def names(data, factor: str) -> set[str]:
    values = next(f for f in data.factors if f.name == factor).values
    return {values[i] for i in data.labels[factor].tolist()}


def test_test_set_by_values_of_a_named_group(tmp_path) -> None:
    root = make_corpus(tmp_path / "c")
    entries = apply_split(scan_folder(root, PATTERN), cfg(root, split="values", split_group="take", test_values=(5, "6")), root)
    test = [e for e in entries if e.split == "test"]
    assert len(test) == 4 * 2 * 2 and {e.groups["take"] for e in test} == {"5", "6"}
    train, held = load_dataset(cfg(root, split="values", split_group="take", test_values=(5, 6)))
    assert len(torch.unique(held.utterance)) == 16 and len(torch.unique(train.utterance)) == 32
    assert set(train.labels) == {"speaker", "word"}  # take is a repetition index, not a factor
    with pytest.raises(ValueError, match=r"test_values \['9'\] never occur in group 'take'"):
        load_dataset(cfg(root, split="values", split_group="take", test_values=(9,)))
    with pytest.raises(ValueError, match="split_group='mood' is not a label"):
        load_dataset(cfg(root, split="values", split_group="mood", test_values=(1,)))


def test_fraction_split_is_seeded_and_stratified_per_speaker(tmp_path) -> None:
    root = make_corpus(tmp_path / "c", speakers=3, takes=5)  # 10 files per speaker
    entries = scan_folder(root, PATTERN)
    a = split_by_fraction(entries, 0.3, seed=1)
    per_speaker = Counter(e.labels["speaker"] for e, s in zip(entries, a) if s == "test")
    assert per_speaker == {"s0": 3, "s1": 3, "s2": 3}
    assert split_by_fraction(entries, 0.3, seed=1) == a
    assert split_by_fraction(entries, 0.3, seed=2) != a
    # adding a speaker leaves the other speakers' draws unchanged
    make_corpus(tmp_path / "c", speakers=4, takes=5)
    more = scan_folder(root, PATTERN)
    b = dict(zip((e.path for e in more), split_by_fraction(more, 0.3, seed=1)))
    assert all(b[e.path] == s for e, s in zip(entries, a))
    train, test = load_dataset(cfg(root, split="fraction", test_fraction=0.3, split_seed=1))
    assert len(torch.unique(test.utterance)) == 12 and names(test, "speaker") == names(train, "speaker")


def test_fraction_keeps_a_one_file_stratum_in_training(tmp_path) -> None:
    root = make_corpus(tmp_path / "c", speakers=2, takes=2)
    write_wav(root / "solo" / "solo-yes-1.wav", 0.1, 300.0)
    out = split_by_fraction(scan_folder(root, PATTERN), 0.5, seed=0)
    assert out[-1] == "train" and out.count("test") == 4


def test_list_files(tmp_path) -> None:
    root = make_corpus(tmp_path / "c", speakers=2, takes=3)
    (root / "testing_list.txt").write_text("# held out\ns0/s0-yes-1.wav\n\ns1/s1-no-2.wav\n")
    train, test = load_dataset(cfg(root, split="list", test_list="testing_list.txt"))
    assert sorted(Path(test.paths[int(u)]).name for u in torch.unique(test.utterance)) == ["s0-yes-1.wav", "s1-no-2.wav"]
    assert len(torch.unique(train.utterance)) == 10
    (root / "train.txt").write_text("s0/s0-yes-2.wav\ns0/s0-no-1.wav\n")
    train, _ = load_dataset(cfg(root, split="list", test_list=str(root / "testing_list.txt"), train_list="train.txt"))
    assert len(torch.unique(train.utterance)) == 2  # files in neither list are not used
    (root / "bad.txt").write_text("s0/s0-yes-1.wav\ns9/s9-yes-1.wav\nnope.wav\ns0/s0-no-3.wav\n")
    with pytest.raises(ValueError) as err:
        load_dataset(cfg(root, split="list", test_list="bad.txt"))
    msg = str(err.value)
    assert "\n" not in msg and "2 of 4 paths in data.test_list" in msg and "s9/s9-yes-1.wav, nope.wav" in msg
    (root / "overlap.txt").write_text("s0/s0-yes-1.wav\n")
    with pytest.raises(ValueError, match=r"1 files are in both .*s0/s0-yes-1.wav"):
        load_dataset(cfg(root, split="list", test_list="testing_list.txt", train_list="overlap.txt"))
    with pytest.raises(FileNotFoundError, match="missing.txt: list file not found"):
        load_dataset(cfg(root, split="list", test_list="missing.txt"))


@pytest.mark.parametrize("how", [{"test_values": ("s1", "s3")}, {"test_fraction": 0.4, "split_seed": 3}])
def test_speaker_disjoint_split_leaks_no_test_speaker(tmp_path, how) -> None:
    root = make_corpus(tmp_path / "c", speakers=5, takes=2)
    train, test = load_dataset(cfg(root, split="speakers", **how))
    spk_train, spk_test = names(train, "speaker"), names(test, "speaker")
    assert len(spk_test) == 2 and len(spk_train) == 3 and not spk_train & spk_test
    assert names(test, "word") == names(train, "word") == set(WORDS)
    for p in (train.paths[int(u)] for u in torch.unique(train.utterance)):
        assert Path(p).parent.name in spk_train  # no file of a test speaker is read into training
    again, _ = load_dataset(cfg(root, split="speakers", **how))
    assert torch.equal(again.x, train.x)
    with pytest.raises(ValueError, match="name every speaker"):
        load_dataset(cfg(root, split="speakers", test_values=tuple(f"s{i}" for i in range(5))))


def test_split_config_errors() -> None:
    with pytest.raises(ConfigError, match="split='values' needs data.split_group"):
        DataConfig(name="audio", path="x", pattern="(?P<speaker>.)", split="values", test_values=(1,))
    with pytest.raises(ConfigError, match="test_fraction in \\(0, 1\\)"):
        DataConfig(name="audio", path="x", pattern="(?P<speaker>.)", split="fraction", test_fraction=1.0)
    with pytest.raises(ConfigError, match="either data.test_values"):
        DataConfig(name="fsdd", path="x", split="speakers", test_values=("theo",), test_fraction=0.3)
    with pytest.raises(ConfigError, match="data.test_list is not used by data.split='speakers'"):
        DataConfig(name="fsdd", path="x", split="speakers", test_values=("theo",), test_list="t.txt")
    with pytest.raises(ConfigError, match="is for audio datasets"):
        DataConfig(name="shapes", split="fraction", test_fraction=0.2)
    with pytest.raises(ConfigError, match="must be one of"):
        load_config(None, ["data.name='fsdd'", "data.path='x'", "data.split='random'"])
    with pytest.raises(ConfigError, match="needs data.chunking='fit'"):
        DataConfig(name="fsdd", path="x", seq_len=0, chunking="split")


def test_seq_len_from_clip_durations(tmp_path) -> None:
    spec = SpectrogramSpec(sample_rate=8000, n_fft=64, hop_length=32)
    assert auto_seq_len([320] * 19 + [3200], spec, 0.95) == 11  # 320 samples fit in 1 + 10 frames
    assert auto_seq_len([10, 20], spec) == 8  # never shorter than 8 frames
    root = tmp_path / "c"
    for i, sec in enumerate((0.1, 0.12, 0.15, 0.2)):
        write_wav(root / "a" / f"a-yes-{i}.wav", sec, 200.0)
    train, _ = load_dataset(DataConfig(name="audio", path=str(root), pattern=PATTERN, seq_len=0, chunking="fit",
                                       n_fft=64, hop_length=32, fit_coverage=1.0))
    assert train.x.shape[1] == 1 + 1600 // 32  # the longest clip, whole


@pytest.mark.skipif(not (FSDD / "recordings").is_dir(), reason=f"FSDD not found at {FSDD}")
def test_fsdd_speaker_disjoint_split() -> None:
    c = load_config("fsdd", [f"data.path={str(FSDD)!r}", "data.split='speakers'", "data.test_values=['theo', 'yweweler']"])
    entries = apply_split(fsdd_entries(FSDD), c.data, FSDD)
    train = {e.labels["speaker"] for e in entries if e.split == "train"}
    test = Counter(e.labels["speaker"] for e in entries if e.split == "test")
    assert test == {"theo": 500, "yweweler": 500} and train == {"george", "jackson", "lucas", "nicolas"}


@pytest.mark.skipif(not (FSDD / "recordings").is_dir(), reason=f"FSDD not found at {FSDD}")
def test_speech_preset_on_fsdd_takes_its_chunk_length_from_the_clips() -> None:
    c = load_config("speech", ["data.name='fsdd'", f"data.path={str(FSDD)!r}"])
    assert c.data.seq_len == 0
    train, test = load_dataset(c.data)
    assert train.x.shape == (2700, 39, 129) and test.x.shape[0] == 300  # 39 frames = 0.61 s hold 95 % of the words
