"""Reading and writing audio: RIFF WAV and NIST SPHERE, resampling, no extra dependency.

Every reader returns mono float32 samples in [-1, 1] and the file's sample rate. Supported:

- RIFF/WAVE with PCM integers (8-bit unsigned, 16/24/32-bit signed), IEEE float (32/64-bit)
  or WAVE_FORMAT_EXTENSIBLE around either; several channels are averaged to mono.
- NIST SPHERE (the original TIMIT ``.WAV`` files): ``NIST_1A`` header, uncompressed PCM of
  1, 2 or 4 bytes per sample, either byte order. Shorten-compressed SPHERE is refused with a
  message that says how to decompress it.

Every failure is an :class:`AudioError` (a ``ValueError``) whose message starts with the path.
"""
from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

import numpy as np
import torch

from ...files.limits import check_allocation

__all__ = ["AudioError", "read_audio", "write_wav", "resample", "sniff_format"]

_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE


class AudioError(ValueError):
    """An audio file cannot be read or written; the message names the file."""


def sniff_format(head: bytes) -> str | None:
    """'wav' for RIFF/WAVE, 'sphere' for NIST SPHERE, None otherwise (first 12 bytes suffice)."""
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:7] == b"NIST_1A":
        return "sphere"
    return None


def read_audio(path: str | Path, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Mono float32 samples (n,) in [-1, 1] and their rate; resampled when ``sample_rate`` is set.

    The format is read from the file's first bytes, not from its extension.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise AudioError(f"{path}: cannot read file ({err.strerror or type(err).__name__})") from err
    kind = sniff_format(data[:12])
    if kind == "wav":
        x, sr = _parse_riff(data, path)
    elif kind == "sphere":
        x, sr = _parse_sphere(data, path)
    else:
        raise AudioError(f"{path}: not a WAV file (no RIFF/WAVE or NIST SPHERE header)")
    if x.size == 0:
        raise AudioError(f"{path}: the file holds no samples")
    if not np.isfinite(x).all():
        raise AudioError(f"{path}: samples contain NaN or infinite values")
    if sample_rate is not None and sample_rate != sr:
        try:
            x = resample(x, sr, sample_rate)
        except ValueError as err:  # e.g. a header rate whose filter cannot be allocated
            raise AudioError(f"{path}: {err}") from err
        sr = sample_rate
    return x.astype(np.float32, copy=False), sr


def _parse_riff(data: bytes, path: Path) -> tuple[np.ndarray, int]:
    fmt: tuple[int, int, int, int] | None = None  # (format tag, channels, rate, bits)
    payload: bytes | None = None
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            if len(body) < 16:
                raise AudioError(f"{path}: corrupt WAV header (fmt chunk of {len(body)} bytes)")
            tag, ch, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            if tag == _EXTENSIBLE:
                if len(body) < 26:
                    raise AudioError(f"{path}: corrupt WAV header (short WAVE_FORMAT_EXTENSIBLE chunk)")
                tag = struct.unpack("<H", body[24:26])[0]  # first two bytes of the sub-format GUID
            fmt = (tag, ch, rate, bits)
        elif cid == b"data":
            payload = body  # a truncated data chunk keeps the samples that are there
        pos += 8 + size + (size & 1)
    if fmt is None or payload is None:
        raise AudioError(f"{path}: corrupt WAV file (missing {'fmt' if fmt is None else 'data'} chunk)")
    tag, ch, rate, bits = fmt
    if ch < 1 or rate < 1:
        raise AudioError(f"{path}: corrupt WAV header ({ch} channels at {rate} Hz)")
    if tag == _PCM and bits in (8, 16, 24, 32):
        x = _decode_int(payload, bits // 8, "<", unsigned_8bit=True)
    elif tag == _FLOAT and bits in (32, 64):
        x = np.frombuffer(payload[: len(payload) // (bits // 8) * (bits // 8)], dtype=f"<f{bits // 8}").astype(np.float64)
    else:
        raise AudioError(f"{path}: unsupported WAV encoding (format tag {tag}, {bits} bits); "
                         "use PCM 8/16/24/32-bit or float 32/64-bit")
    return _to_mono(x, ch), rate


def _decode_int(raw: bytes, width: int, order: str, *, unsigned_8bit: bool) -> np.ndarray:
    """Little/big-endian signed integers of ``width`` bytes -> float64 in [-1, 1)."""
    raw = raw[: len(raw) // width * width]
    if width == 1:  # WAV stores 8-bit PCM unsigned (offset 128), SPHERE signed
        if unsigned_8bit:
            return (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0
        return np.frombuffer(raw, dtype=np.int8).astype(np.float64) / 128.0
    if width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        if order == ">":
            b = b[:, ::-1]
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        return v.astype(np.float64) / float(1 << 23)
    a = np.frombuffer(raw, dtype=f"{order}i{width}").astype(np.float64)
    return a / float(1 << (8 * width - 1))


def _to_mono(x: np.ndarray, channels: int) -> np.ndarray:
    n = x.size // channels * channels
    return x[:n].reshape(-1, channels).mean(axis=1)


def _parse_sphere(data: bytes, path: Path) -> tuple[np.ndarray, int]:
    lines = data[:16].split(b"\n")
    try:
        header_size = int(lines[1].strip())
    except (IndexError, ValueError):
        raise AudioError(f"{path}: corrupt NIST SPHERE header (no header size)") from None
    if header_size < 16 or header_size > len(data):
        raise AudioError(f"{path}: corrupt NIST SPHERE header (header size {header_size})")
    fields: dict[str, str] = {}
    for line in data[:header_size].decode("ascii", errors="replace").splitlines()[2:]:
        parts = line.split(None, 2)
        if not parts or parts[0] == "end_head":
            break
        if len(parts) == 3:
            fields[parts[0]] = parts[2].strip()
    coding = fields.get("sample_coding", "pcm").lower()
    if "shorten" in coding or "wavpack" in coding or "shortpack" in coding:
        raise AudioError(f"{path}: SPHERE file is compressed ({coding}); decompress it first "
                         "(e.g. `sph2pipe -f wav IN OUT.wav`)")
    if not coding.startswith("pcm"):
        raise AudioError(f"{path}: unsupported SPHERE sample coding {coding!r} (need pcm)")
    try:
        rate = int(float(fields["sample_rate"]))
        width = int(fields.get("sample_n_bytes", "2"))
        channels = int(fields.get("channel_count", "1"))
    except (KeyError, ValueError):
        raise AudioError(f"{path}: corrupt NIST SPHERE header (missing sample_rate)") from None
    if width not in (1, 2, 4) or channels < 1 or rate < 1:
        raise AudioError(f"{path}: unsupported SPHERE layout ({width} bytes per sample, {channels} channels)")
    order = ">" if fields.get("sample_byte_format", "01") in ("10", "1032") else "<"
    body = data[header_size:]
    count = fields.get("sample_count")
    if count is not None and count.isdigit():
        body = body[: int(count) * width * channels]
    x = _decode_int(body, width, order, unsigned_8bit=False)
    return _to_mono(x, channels), rate


def write_wav(path: str | Path, x: np.ndarray | torch.Tensor, sample_rate: int) -> Path:
    """Write mono samples (n,) to a 16-bit PCM WAV; values outside [-1, 1] are clipped."""
    path = Path(path)
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.ndim != 1:
        raise AudioError(f"{path}: need mono samples of shape (n,), got {a.shape}")
    if not np.isfinite(a).all():
        raise AudioError(f"{path}: samples contain NaN or infinite values")
    pcm = np.round(np.clip(a, -1.0, 1.0) * 32767.0).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm.tobytes())
    return path


def resample(x: np.ndarray, orig_sr: int, new_sr: int, *, zeros: int = 16, rolloff: float = 0.945) -> np.ndarray:
    """Band-limited resampling by a Hann-windowed sinc (polyphase, exact rational ratio).

    With g = gcd(orig, new), output sample m sits at input time m·orig/new; its value is
    Σ_n x[n] h(m·orig/new − n), h a sinc low-pass at ``rolloff`` × the lower Nyquist rate,
    windowed over ``zeros`` zero crossings on each side. Each of the new/g phases has its own
    filter, applied as one strided 1-D convolution. (n,) float -> (ceil(n·new/orig),) float32.
    """
    if orig_sr < 1 or new_sr < 1:
        raise ValueError(f"sample rates must be >= 1, got {orig_sr} -> {new_sr}")
    x = np.asarray(x, dtype=np.float64)
    if orig_sr == new_sr:
        return x.astype(np.float32)
    g = math.gcd(int(orig_sr), int(new_sr))
    up, down = new_sr // g, orig_sr // g  # output m reads input at (m·down)/up
    cutoff = rolloff * min(1.0, up / down)  # fraction of the input Nyquist rate
    width = int(math.ceil(zeros / cutoff))  # filter half-width in input samples
    n_taps = 2 * width + down
    # the (up, L) filter is built in float64 about 4 times over; the signal is padded, the output is (n·up/down,)
    check_allocation(8 * (4 * up * n_taps + 2 * (x.size + n_taps) + 2 * (x.size * up // down + up)),
                     f"resampling {x.size} samples from {orig_sr} Hz to {new_sr} Hz (a filter of {up} x {n_taps} taps)")
    # phase p: output m = q·up + p sits at input q·down + p·down/up
    phase = torch.arange(up, dtype=torch.float64)[:, None] * down / up  # (up, 1)
    taps = torch.arange(-width, width + down, dtype=torch.float64)[None, :]  # (1, L)
    t = (taps - phase) * cutoff  # in units of the low-pass period
    win = torch.where(t.abs() <= zeros, 0.5 + 0.5 * torch.cos(math.pi * t / zeros), torch.zeros_like(t))
    h = cutoff * torch.special.sinc(t) * win  # (up, L)
    sig = torch.from_numpy(x)[None, None, :]  # (1, 1, n)
    sig = torch.nn.functional.pad(sig, (width, width + down))
    y = torch.nn.functional.conv1d(sig, h[:, None, :], stride=down)  # (1, up, Q)
    y = y[0].T.reshape(-1)  # interleave phases: (Q·up,)
    n_out = int(math.ceil(x.size * up / down))
    return y[:n_out].numpy().astype(np.float32)
