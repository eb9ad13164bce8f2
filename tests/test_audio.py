"""Audio front end: readers (WAV, SPHERE), resampling, STFT / Griffin-Lim, folder datasets, bad input."""
from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from skd.data.audio import (AudioError, SpectrogramSpec, features, features_to_magnitude, griffin_lim, istft,
                       mel_filterbank, read_audio, resample, scan_folder, stft, timit_entries, write_wav)
from skd.data.audio.datasets import TIMIT_CORE_TEST, build_audio_data, fsdd_entries
from skd.data.audio.features import fit_window, split_chunks
from skd.config import DataConfig
from skd.data import load_dataset

FSDD = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd"


def tone(freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_pcm16(path: Path, x: np.ndarray, sr: int, channels: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = np.round(np.clip(x, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())
    return path


def write_riff(path: Path, payload: bytes, tag: int, bits: int, sr: int, channels: int = 1, extensible: bool = False) -> Path:
    block = channels * bits // 8
    if extensible:
        fmt = struct.pack("<HHIIHH", 0xFFFE, channels, sr, sr * block, block, bits)
        fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", tag) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    else:
        fmt = struct.pack("<HHIIHH", tag, channels, sr, sr * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(payload)) + payload
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def write_sphere(path: Path, x: np.ndarray, sr: int, byte_format: str = "01") -> Path:
    """A NIST SPHERE file as in TIMIT: 1024-byte text header, then 16-bit PCM."""
    order = "<" if byte_format == "01" else ">"
    pcm = np.round(np.clip(x, -1, 1) * 32767).astype(f"{order}i2").tobytes()
    fields = ["database_id -s5 TIMIT", "database_version -s3 1.0", "utterance_id -s8 abc_sx1",
              "channel_count -i 1", f"sample_count -i {x.size}", f"sample_rate -i {sr}", "sample_min -i -32768",
              "sample_max -i 32767", "sample_n_bytes -i 2", f"sample_byte_format -s2 {byte_format}",
              "sample_sig_bits -i 16", "end_head"]
    header = ("NIST_1A\n   1024\n" + "\n".join(fields) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + b" " * (1024 - len(header)) + pcm)
    return path


# ----------------------------------------------------------------------------- readers
def test_wav_encodings_read_back(tmp_path) -> None:
    x = tone(300, 8000, 0.1, amp=0.6)
    ref = np.round(x * 32767) / 32768
    got, sr = read_audio(write_pcm16(tmp_path / "a.wav", x, 8000))
    assert sr == 8000 and got.dtype == np.float32 and np.allclose(got, ref, atol=1e-6)
    i24 = np.round(x * (2 ** 23 - 1)).astype(np.int32)
    raw24 = np.stack([i24 & 255, (i24 >> 8) & 255, (i24 >> 16) & 255], 1).astype(np.uint8).tobytes()
    assert np.allclose(read_audio(write_riff(tmp_path / "b.wav", raw24, 1, 24, 8000))[0], x, atol=1e-6)
    assert np.allclose(read_audio(write_riff(tmp_path / "c.wav", x.astype("<f4").tobytes(), 3, 32, 8000))[0], x)
    assert np.allclose(read_audio(write_riff(tmp_path / "d.wav", x.astype("<f4").tobytes(), 3, 32, 8000, extensible=True))[0], x)
    u8 = (np.round(x * 127) + 128).astype(np.uint8).tobytes()
    assert np.allclose(read_audio(write_riff(tmp_path / "e.wav", u8, 1, 8, 8000))[0], x, atol=1 / 100)
    stereo = np.stack([x, -x + 0.2], 1).ravel()  # mono = mean of channels = 0.1
    assert np.allclose(read_audio(write_pcm16(tmp_path / "f.wav", stereo, 8000, channels=2))[0], 0.1, atol=1e-4)


def test_write_wav_round_trip(tmp_path) -> None:
    x = tone(500, 16000, 0.05)
    got, sr = read_audio(write_wav(tmp_path / "o" / "x.wav", x, 16000))
    assert sr == 16000 and np.abs(got - x).max() < 1e-4


@pytest.mark.parametrize("byte_format", ["01", "10"])
def test_sphere_reader(tmp_path, byte_format) -> None:
    x = tone(440, 16000, 0.05)
    got, sr = read_audio(write_sphere(tmp_path / "SX1.WAV", x, 16000, byte_format))
    assert sr == 16000 and got.shape == x.shape and np.abs(got - x).max() < 1e-4


def test_compressed_sphere_is_refused(tmp_path) -> None:
    p = write_sphere(tmp_path / "SX2.WAV", tone(440, 16000, 0.01), 16000)
    p.write_bytes(p.read_bytes().replace(b"end_head", b"sample_coding -s26 pcm,embedded-shorten-v2.00\nend_head", 1))
    with pytest.raises(AudioError, match=r"SX2\.WAV.*compressed.*sph2pipe"):
        read_audio(p)


@pytest.mark.parametrize("content", [b"", b"hello, this is text", b"RIFF\x10\x00\x00\x00WAVEfmt "])
def test_not_a_wav_names_the_file(tmp_path, content) -> None:
    p = tmp_path / "broken.wav"
    p.write_bytes(content)
    with pytest.raises(AudioError, match="broken.wav"):
        read_audio(p)


# ----------------------------------------------------------------------------- resampling
def _peak_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size), n=8 * x.size))
    return float(np.argmax(spec) * sr / (8 * x.size))


@pytest.mark.parametrize("orig,new", [(16000, 8000), (8000, 16000), (44100, 16000), (8000, 11025)])
def test_resample_keeps_frequency_and_level(orig, new) -> None:
    x = tone(440.0, orig, 0.5)
    y = resample(x, orig, new)
    assert y.size == int(np.ceil(x.size * new / orig))
    assert abs(_peak_hz(y, new) - 440.0) < 2.0
    mid = y[y.size // 4: -y.size // 4]
    assert abs(np.sqrt(2 * np.mean(mid ** 2)) - 0.5) < 0.01  # amplitude kept (no edge effects in the middle)


def test_resample_removes_content_above_new_nyquist() -> None:
    x = tone(6000.0, 16000, 0.5)  # above the 4 kHz Nyquist rate of 8 kHz
    y = resample(x, 16000, 8000)
    assert np.sqrt(np.mean(y[500:-500] ** 2)) < 0.01


def test_read_audio_resamples_on_request(tmp_path) -> None:
    p = write_pcm16(tmp_path / "a.wav", tone(440, 16000, 0.25), 16000)
    y, sr = read_audio(p, sample_rate=8000)
    assert sr == 8000 and y.size == 2000 and abs(_peak_hz(y, 8000) - 440) < 2


# ----------------------------------------------------------------------------- spectrograms
def test_stft_istft_round_trip() -> None:
    spec = SpectrogramSpec(8000, n_fft=256, hop_length=64)
    x = torch.randn(4000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    X = stft(x, spec)
    assert X.shape == (129, spec.n_frames(4000))
    assert torch.allclose(istft(X, spec, length=4000), x, atol=1e-9)
    spec2 = SpectrogramSpec(16000, n_fft=400, win_length=320, hop_length=160)
    assert torch.allclose(istft(stft(x, spec2), spec2, length=4000), x, atol=1e-9)


def test_griffin_lim_reduces_spectral_convergence() -> None:
    spec = SpectrogramSpec(8000, n_fft=256, hop_length=64)
    t = np.arange(4000) / 8000
    x = torch.from_numpy(0.5 * np.sin(2 * np.pi * (200 * t + 400 * t ** 2)))  # a chirp
    mag = stft(x, spec).abs()
    errors: list[float] = []
    y = griffin_lim(mag, spec, n_iter=40, length=4000, generator=torch.Generator().manual_seed(0), errors=errors)
    assert y.shape == (4000,) and len(errors) == 40
    assert errors[-1] < 0.5 * errors[0] and errors[-1] < 0.1
    assert errors[-1] <= min(errors[:5])


def test_mel_features_invert_to_a_plausible_magnitude() -> None:
    spec = SpectrogramSpec(8000, n_fft=256, hop_length=128, n_mels=40)
    fb = mel_filterbank(spec)
    assert fb.shape == (40, 129) and bool((fb.sum(1) > 0).all()) and float(fb.min()) >= 0
    x = torch.from_numpy(tone(700, 8000, 0.3).astype(np.float64))
    f = features(x, spec)
    assert f.shape == (spec.n_frames(x.numel()), 40) and f.dtype == torch.float32
    mag = features_to_magnitude(f, spec)
    assert mag.shape == (129, f.shape[0]) and float(mag.min()) >= 0
    peak_bin = int(mag[:, 5].argmax())
    assert abs(peak_bin * 8000 / 256 - 700) < 150
    again = features(istft(torch.polar(mag, stft(x, spec).angle()), spec, x.numel()), spec)
    assert float((again - f)[2:-2].abs().mean()) < 0.5  # log-mel of the inverse is close


def test_chunking_helpers() -> None:
    f = torch.arange(23.0)[:, None].repeat(1, 3)  # (23, 3)
    c = split_chunks(f, 5)
    assert c.shape == (4, 5, 3) and torch.equal(c[1, :, 0], torch.arange(5.0, 10.0))
    assert split_chunks(f[:4], 5).shape == (0, 5, 3)
    x = np.zeros(1000, np.float32)
    x[600:700] = 1.0
    w, start = fit_window(x, 200)
    assert w.size == 200 and w.sum() == 100 and start == 550  # the middle one of the loudest windows
    w, start = fit_window(np.ones(50, np.float32), 200)
    assert w.size == 200 and start == -75 and w[75:125].sum() == 50 and w.sum() == 50  # centred in silence


# ----------------------------------------------------------------------------- folder datasets
SPEAKERS = {"ann": 140.0, "bob": 260.0, "cy": 420.0}


def make_folder(root: Path, n_takes: int = 3, seconds: float = 0.3, sr: int = 8000) -> Path:
    """speaker folders of '<word>_<take>_<split>.wav' tones: pitch = speaker, glide = word."""
    for spk, f0 in SPEAKERS.items():
        for word, glide in (("up", 1.5), ("down", 0.67)):
            for take in range(n_takes):
                t = np.arange(int(sr * seconds)) / sr
                f = f0 * glide ** (t / seconds)
                x = 0.3 * np.sin(2 * np.pi * np.cumsum(f) / sr) + 0.1 * np.sin(4 * np.pi * np.cumsum(f) / sr)
                split = "test" if take == 0 else "train"
                write_pcm16(root / spk / f"{word}_{take}_{split}.wav", x.astype(np.float32), sr)
    return root


PATTERN = r"(?P<speaker>[a-z]+)/(?P<content>[a-z]+)_\d+_(?P<split>[a-z]+)\.wav$"


def test_audio_folder_reads_labels_from_paths(tmp_path) -> None:
    root = make_folder(tmp_path / "spk")
    (root / "notes.txt").write_text("not audio, ignored")
    (root / "ann" / "unrelated.wav").write_bytes(b"junk")  # does not match the pattern: never opened
    entries = scan_folder(root, PATTERN)
    assert len(entries) == 18 and {e.split for e in entries} == {"train", "test"}
    assert entries[0].labels == {"speaker": "ann", "content": "down"}
    cfg = DataConfig(name="audio", path=str(root), pattern=PATTERN, seq_len=6, n_fft=128, hop_length=64)
    train, test = load_dataset(cfg)
    assert test is not None and train.x.shape[1:] == (6, 65)
    assert len(torch.unique(train.utterance)) == 12 and len(torch.unique(test.utterance)) == 6
    assert len(train) == 12 * (37 // 6)  # 2400 samples -> 38 frames -> 6 chunks per file
    kinds = {f.name: f.kind for f in train.factors}
    assert kinds == {"content": "dynamic", "speaker": "static"}
    assert train.factors[1].values == ("ann", "bob", "cy")
    assert abs(float(train.x.mean())) < 1e-4  # standardised on the training frames
    raw = train.raw_features(train.x[:2])
    assert torch.allclose(raw[0, 0], features(read_audio(train.paths[int(train.utterance[0])])[0], train.spec)[0], atol=1e-4)


def test_audio_folder_fit_chunking_and_resampling(tmp_path) -> None:
    root = make_folder(tmp_path / "spk", seconds=0.2, sr=16000)
    cfg = DataConfig(name="audio", path=str(root), pattern=PATTERN, seq_len=30, n_fft=128, hop_length=64,
                     sample_rate=8000, chunking="fit", n_mels=16)
    train, test = load_dataset(cfg)
    assert train.x.shape == (12, 30, 16) and test.x.shape == (6, 30, 16)
    assert train.spec.sample_rate == 8000 and int(train.offsets[0]) == -128  # 1600 samples centred in 1856


def test_no_split_group_means_no_test(tmp_path) -> None:
    root = make_folder(tmp_path / "spk")
    train, test = load_dataset(DataConfig(name="audio", path=str(root), pattern=r"(?P<speaker>[a-z]+)/", seq_len=4))
    assert test is None and len(torch.unique(train.utterance)) == 18


# ----------------------------------------------------------------------------- bad input
def test_bad_folders_and_patterns(tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"empty: no audio files"):
        scan_folder(empty, PATTERN)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        scan_folder(tmp_path / "nowhere", PATTERN)
    root = make_folder(tmp_path / "spk", n_takes=1)
    with pytest.raises(ValueError, match=r"matches none of the 6 audio files .*ann/down_0_test.wav"):
        scan_folder(root, r"(?P<speaker>zz)/")
    with pytest.raises(ValueError, match="not a valid regular expression"):
        scan_folder(root, r"(?P<speaker>[a-z")
    with pytest.raises(ValueError, match="no named groups"):
        scan_folder(root, r"[a-z]+/")
    write_pcm16(root / "ann" / "up_9_valid.wav", tone(200, 8000, 0.2), 8000)
    with pytest.raises(ValueError, match=r"up_9_valid.wav: split 'valid'"):
        scan_folder(root, PATTERN)


def test_unreadable_files_are_named_in_one_error(tmp_path) -> None:
    root = make_folder(tmp_path / "spk", n_takes=1)
    (root / "bob" / "up_0_test.wav").write_bytes(b"this is not audio")
    (root / "cy" / "down_0_test.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVE")
    cfg = DataConfig(name="audio", path=str(root), pattern=PATTERN, seq_len=4)
    with pytest.raises(AudioError) as e:
        load_dataset(cfg)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("2 of 6 audio files cannot be read")
    assert "bob/up_0_test.wav: not a WAV file" in msg and "cy/down_0_test.wav" in msg


def test_too_short_clips_and_mixed_rates(tmp_path) -> None:
    root = make_folder(tmp_path / "spk", n_takes=2)
    write_pcm16(root / "ann" / "up_0_test.wav", tone(200, 8000, 0.01), 8000)
    cfg = DataConfig(name="audio", path=str(root), pattern=PATTERN, seq_len=10, hop_length=128)
    with pytest.raises(ValueError, match=r"1 clips are shorter than one chunk of 10 frames .*ann/up_0_test.wav \(0.010 s\)"):
        load_dataset(cfg)
    write_pcm16(root / "ann" / "up_0_test.wav", tone(200, 16000, 0.3), 16000)
    with pytest.raises(AudioError, match=r"different sample rates \[8000, 16000\].*ann/up_0_test.wav \(16000 Hz\)"):
        load_dataset(cfg)
    train, _ = load_dataset(DataConfig(name="audio", path=str(root), pattern=PATTERN, seq_len=10, sample_rate=8000))
    assert train.spec.sample_rate == 8000


def test_audio_config_errors() -> None:
    from skd.config import ConfigError

    with pytest.raises(ConfigError, match="data.path is required"):
        DataConfig(name="fsdd")
    with pytest.raises(ConfigError, match="data.pattern is required"):
        DataConfig(name="audio", path="x")
    with pytest.raises(ConfigError, match="cannot be set"):
        DataConfig(name="timit", path="x", pattern="(?P<a>.)")


# ----------------------------------------------------------------------------- TIMIT layout
def make_timit(root: Path) -> Path:
    """A tiny TIMIT-shaped copy: SPHERE .WAV files, SA/SI/SX sentences, core and other test speakers."""
    rng = np.random.default_rng(0)
    layout = {("TRAIN", "DR1", "FCJF0"): 0, ("TRAIN", "DR2", "MAEB0"): 1, ("TEST", "DR1", "MDAB0"): 2,
              ("TEST", "DR8", "FMLD0"): 3, ("TEST", "DR1", "MREB0"): 4}  # MREB0 is not a core speaker
    for (split, dr, spk), i in layout.items():
        for sent in ("SA1", "SA2", "SI1027", "SX127", "SX217"):
            x = 0.2 * np.sin(2 * np.pi * (120 + 40 * i) * np.arange(4000) / 16000) + 0.01 * rng.standard_normal(4000)
            write_sphere(root / "TIMIT" / split / dr / spk / f"{sent}.WAV", x, 16000)
            (root / "TIMIT" / split / dr / spk / f"{sent}.TXT").write_text("0 4000 text\n")
    return root


def test_timit_core_test_protocol(tmp_path) -> None:
    assert len(TIMIT_CORE_TEST) == 24 and len(set(TIMIT_CORE_TEST)) == 24
    root = make_timit(tmp_path / "copy")
    entries = timit_entries(root)
    assert all(not e.path.name.startswith("SA") for e in entries)
    test_spk = sorted({e.labels["speaker"] for e in entries if e.split == "test"})
    assert test_spk == ["FMLD0", "MDAB0"]  # MREB0 is not in the core test set
    assert sum(e.split == "train" for e in entries) == 6
    cfg = DataConfig(name="timit", path=str(root), n_fft=400, win_length=320, hop_length=160, seq_len=5)
    train, test = load_dataset(cfg)
    assert train.x.shape[1:] == (5, 201) and train.spec.sample_rate == 16000
    assert len(train) == 6 * (26 // 5) and len(test) == 6 * 5  # 4000 samples -> 26 frames -> 5 chunks
    kinds = {f.name: f.kind for f in test.factors}
    assert kinds == {"dialect": "static", "gender": "static", "speaker": "static"}


def test_timit_errors(tmp_path) -> None:
    with pytest.raises(ValueError, match="not a TIMIT folder"):
        timit_entries(make_folder(tmp_path / "spk", n_takes=1))
    root = make_timit(tmp_path / "t")
    for spk in ("MDAB0", "FMLD0"):
        for p in (root / "TIMIT" / "TEST").rglob(f"{spk}/*"):
            p.unlink()
    with pytest.raises(ValueError, match="none of the 24 TIMIT core-test speakers"):
        timit_entries(root)


# ----------------------------------------------------------------------------- FSDD (real speech)
needs_fsdd = pytest.mark.skipif(not (FSDD / "recordings").is_dir(), reason=f"FSDD not found at {FSDD}")


@needs_fsdd
def test_fsdd_entries_follow_its_split() -> None:
    entries = fsdd_entries(FSDD)
    assert len(entries) == 3000
    test = [e for e in entries if e.split == "test"]
    assert len(test) == 300 and all(int(e.path.stem.split("_")[2]) < 5 for e in test)
    assert {e.labels["speaker"] for e in entries} == {"george", "jackson", "lucas", "nicolas", "theo", "yweweler"}


@needs_fsdd
def test_fsdd_preset_loads_one_chunk_per_utterance() -> None:
    from skd.config import load_config

    cfg = load_config("fsdd", [f"data.path={str(FSDD)!r}"])
    train, test = load_dataset(cfg.data)
    assert train.x.shape == (2700, cfg.data.seq_len, train.spec.n_bins) and test.x.shape[0] == 300
    assert train.factors[0].name == "content" and train.factors[0].kind == "dynamic"
    assert torch.bincount(test.labels["speaker"]).tolist() == [50] * 6


# ----------------------------------------------------------------------------- CLI: train, eval, listen
def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_cli_train_eval_swap_on_an_audio_folder(tmp_path, capsys) -> None:
    import json

    from skd.cli.main import main

    root = make_folder(tmp_path / "spk", n_takes=4)
    run = tmp_path / "run"
    data = ["--set", "data.name='audio'", "--set", f"data.path={str(root)!r}", "--set", f"data.pattern='{PATTERN}'",
            "--set", "data.seq_len=8", "--set", "data.chunking='split'", "--set", "data.n_fft=128", "--set", "data.hop_length=64", "--set", "data.chunk_hop=4"]
    tiny = ["--set", "model.hidden=32", "--set", "model.k=8", "--set", "loss.static_size=2", "--set", "train.batch_size=16",
            "--set", "train.max_steps=4", "--set", "train.epochs=0", "--set", "train.minutes=0"]
    assert main(["train", "-q", "--config", "fsdd", "--out", str(run), *data, *tiny]) == 0
    capsys.readouterr()
    assert main(["eval", "--audio", "--run", str(run), "--fit-batch", "32"]) == 0
    out = capsys.readouterr().out
    assert "EER" in out and "content" in out
    res = json.loads((run / "eval_audio.json").read_text())
    assert res["n_utterances"] == 6 and res["n_speakers"] == 3 and res["probe_protocol"] == "train->test"
    for key in ("static_eer", "dynamic_eer", "speaker_probe_static", "content_probe_dynamic"):
        assert 0.0 <= res[key] <= 1.0
    assert main(["swap", "-q", "--run", str(run), "--pairs", "0:3", "--fit-batch", "32"]) == 0
    swaps = run / "swaps"
    for name in ("A", "B", "A_recon", "A-words_B-voice", "B-words_A-voice"):
        x, sr = read_audio(swaps / f"pair00_{name}.wav")
        assert sr == 8000 and x.size > 1000 and np.isfinite(x).all()
    assert (swaps / "pair00.png").stat().st_size > 0
    assert json.loads((swaps / "swap.json").read_text())["pairs"] == [[0, 3]]
    capsys.readouterr()
    assert main(["swap", "-q", "--run", str(run), "--pairs", "0:6"]) == 2
    assert "out of range" in _one_error_line(capsys)


def test_cli_bad_audio_input_is_one_line(tmp_path, capsys) -> None:
    from skd.cli.main import main

    empty = tmp_path / "empty"
    empty.mkdir()
    base = ["train", "--out", str(tmp_path / "r"), "--set", "data.name='audio'", "--set", f"data.pattern='{PATTERN}'"]
    assert main([*base, "--set", f"data.path={str(empty)!r}"]) == 2
    assert "no audio files" in _one_error_line(capsys)
    root = make_folder(tmp_path / "spk", n_takes=2)
    (root / "cy" / "up_1_train.wav").write_text("plain text")
    assert main([*base, "--set", f"data.path={str(root)!r}"]) == 2
    assert "cy/up_1_train.wav: not a WAV file" in _one_error_line(capsys)
    assert main(["train", "--out", str(tmp_path / "r"), "--set", "data.name='audio'", "--set", f"data.path={str(root)!r}",
                 "--set", "data.pattern='(?P<speaker>nobody)/'"]) == 2
    assert "matches none of the" in _one_error_line(capsys)
    assert not (tmp_path / "r").exists()


def test_cli_eval_on_timit_layout_uses_cross_validated_probes(tmp_path, capsys) -> None:
    import json

    from skd.cli.main import main

    root = make_timit(tmp_path / "copy")
    run = tmp_path / "run"
    assert main(["train", "-q", "--config", "timit", "--out", str(run), "--set", f"data.path={str(root)!r}",
                 "--set", "data.seq_len=5", "--set", "model.hidden=16", "--set", "model.k=6", "--set", "loss.static_size=2",
                 "--set", "train.batch_size=8", "--set", "train.max_steps=2", "--set", "train.epochs=0"]) == 0
    assert main(["eval", "--audio", "--run", str(run)]) == 0
    res = json.loads((run / "eval_audio.json").read_text())
    assert res["n_speakers"] == 2 and res["n_utterances"] == 6
    assert res["probe_protocol"] == "4-fold CV on test" and res["content_probe_dynamic"] is None
    assert res["swap"]["speaker_probe"] == "test (unswapped)" and 0 <= res["swap"]["speaker_of_static_donor"] <= 1
