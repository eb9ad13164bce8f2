"""Build a second isolated-word corpus with espeak-ng: many synthetic voices, one word per file.

    apt-get install espeak-ng
    python benchmarks/build_espeak_corpus.py --out data/espeak_words     # 20 x 20 x 6 = 2,400 WAVs, 15 s on a 2-core Xeon

A "speaker" is an espeak-ng voice variant (en+m1 ... en+f5) at a base pitch and speed; a take
is the same word again with small seeded variations of pitch (±4 of espeak's 0-99 scale), speed
(±6 %) and level (±3 dB), so no two takes are identical. Files are written as
``OUT/{speaker}/{speaker}-{word}-{take}.wav`` (16-bit mono at espeak-ng's rate, 22,050 Hz), with
the pattern to read them and ``OUT/manifest.json`` (every file with its settings). The same
arguments and seed give the same settings; the audio itself is espeak-ng's (version in the
manifest). Train on it with the ``speech`` preset:

    skd train --config speech --out runs/espeak --set data.path=data/espeak_words \\
        --set "data.pattern='$(cat data/espeak_words/PATTERN)'" \\
        --set data.split=values --set data.split_group=take --set "data.test_values=[5, 6]"
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np

VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
# (base pitch 0-99, words per minute): a low/slow and a high/fast version of every variant
STYLES = ((30, 145), (65, 185))
WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
         "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
PATTERN = r"(?P<speaker>[^/]+)/(?P=speaker)-(?P<word>[a-z]+)-(?P<take>\d+)\.wav$"


def speakers(n: int) -> list[tuple[str, str, int, int]]:
    """(name, variant, pitch, speed) of n speakers: variants cycle fastest, then styles."""
    combos = [(v, p, s) for (p, s) in STYLES for v in VARIANTS]
    if not 1 <= n <= len(combos):
        raise SystemExit(f"--speakers={n} must be in 1..{len(combos)}")
    return [(f"{v}p{p}", v, p, s) for v, p, s in combos[:n]]


def scale_wav(path: Path, gain: float) -> None:
    """Multiply the 16-bit samples of ``path`` by ``gain`` in place (clipped)."""
    with wave.open(str(path), "rb") as r:
        params = r.getparams()
        x = np.frombuffer(r.readframes(params.nframes), dtype="<i2").astype(np.float64)
    y = np.clip(np.round(x * gain), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setparams(params)
        w.writeframes(y.tobytes())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--speakers", type=int, default=20)
    ap.add_argument("--words", type=int, default=len(WORDS))
    ap.add_argument("--takes", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--espeak", default="espeak-ng", help="the espeak-ng executable")
    args = ap.parse_args(argv)
    exe = shutil.which(args.espeak)
    if exe is None:
        print(f"error: {args.espeak} not found (Debian/Ubuntu: apt-get install espeak-ng)", file=sys.stderr)
        return 2
    if not 1 <= args.words <= len(WORDS) or args.takes < 1:
        print(f"error: --words must be in 1..{len(WORDS)} and --takes >= 1", file=sys.stderr)
        return 2
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.strip()
    rng = np.random.default_rng(args.seed)
    files = []
    for name, variant, pitch, speed in speakers(args.speakers):
        for word in WORDS[:args.words]:
            for take in range(1, args.takes + 1):
                p = int(np.clip(pitch + rng.integers(-4, 5), 0, 99))
                s = int(round(speed * (1 + rng.uniform(-0.06, 0.06))))
                gain = float(10 ** (rng.uniform(-3, 3) / 20) * 0.8)
                path = args.out / name / f"{name}-{word}-{take}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                subprocess.run([exe, "-v", f"en-us+{variant}", "-p", str(p), "-s", str(s), "-w", str(path), word],
                               check=True, capture_output=True)
                scale_wav(path, gain)
                files.append({"path": path.relative_to(args.out).as_posix(), "voice": f"en-us+{variant}", "pitch": p,
                              "speed": s, "gain": round(gain, 4)})
    (args.out / "PATTERN").write_text(PATTERN + "\n")
    manifest = {"espeak": version, "seed": args.seed, "pattern": PATTERN, "files": files}
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"{len(files)} files ({args.speakers} speakers x {args.words} words x {args.takes} takes) in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
