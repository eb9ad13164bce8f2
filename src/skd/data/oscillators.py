"""Built-in vector time series: swinging pendulums seen by a grid of colour sensors.

Each sequence is one damped pendulum, integrated with RK4 (θ'' = −(g/L) sin θ − (c/m) θ') and
observed every ``DT`` seconds by a 6 × 6 grid of sensors with three colour channels: a sensor
reads the bob's colour times a Gaussian of its distance to the bob, whose width grows with the
mass. So x is float32 (N, T, 108) and the factors are:

- static ``length`` (3: short / medium / long): the pendulum's length (radius and period);
- static ``color`` (4): the bob's RGB signature;
- static ``mass`` (2: light / heavy): the bob's size and the damping (heavier = slower decay);
- dynamic ``phase`` (8): where in its swing the pendulum starts — the initial phase of
  (θ, θ') = A(cos φ, −ω sin φ), φ in one of 8 bins of [0, 2π), jittered inside the bin.

Generated with numpy in well under a second, deterministic by seed.
"""
from __future__ import annotations

import numpy as np
import torch

from .base import Factor, SequenceData

G = 9.81
DT = 0.1  # seconds between observations
SUBSTEPS = 10  # RK4 steps per observation
LENGTHS = np.array([0.6, 1.0, 1.6])  # metres
LENGTH_NAMES = ("short", "medium", "long")
COLORS = np.array([[1.0, 0.2, 0.2], [0.2, 1.0, 0.3], [0.25, 0.4, 1.0], [1.0, 0.9, 0.2]])  # (4, 3)
COLOR_NAMES = ("red", "green", "blue", "yellow")
MASS_NAMES = ("light", "heavy")
MASS_WIDTH = np.array([0.18, 0.28])  # sensor blob width
MASS_DAMPING = np.array([0.25, 0.08])  # c/m, 1/s
PHASE_BINS = 8
AMPLITUDE = 1.0  # radians (57°): clearly non-linear
GRID = 6
SENSOR_X, SENSOR_Y = np.meshgrid(np.linspace(-1.0, 1.0, GRID), np.linspace(-1.05, 0.0, GRID))  # pivot at (0, 0)
INPUT_DIM = 3 * GRID * GRID


def oscillator_factors() -> tuple[Factor, ...]:
    return (
        Factor("length", len(LENGTHS), "static", LENGTH_NAMES),
        Factor("color", len(COLORS), "static", COLOR_NAMES),
        Factor("mass", len(MASS_NAMES), "static", MASS_NAMES),
        Factor("phase", PHASE_BINS, "dynamic", tuple(f"{360 * i // PHASE_BINS}deg" for i in range(PHASE_BINS))),
    )


def _rk4(theta: np.ndarray, omega: np.ndarray, w2: np.ndarray, damp: np.ndarray, h: float) -> tuple[np.ndarray, np.ndarray]:
    def f(th, om):
        return om, -w2 * np.sin(th) - damp * om

    k1 = f(theta, omega)
    k2 = f(theta + 0.5 * h * k1[0], omega + 0.5 * h * k1[1])
    k3 = f(theta + 0.5 * h * k2[0], omega + 0.5 * h * k2[1])
    k4 = f(theta + h * k3[0], omega + h * k3[1])
    return (theta + h / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0]),
            omega + h / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1]))


def simulate_angles(length: np.ndarray, mass: np.ndarray, phase: np.ndarray, seq_len: int) -> np.ndarray:
    """Angles θ (N, T) of pendulums with factor indices ``length``, ``mass`` and phases φ (N,) radians."""
    w2 = G / LENGTHS[length]  # (N,)
    damp = MASS_DAMPING[mass]
    theta = AMPLITUDE * np.cos(phase)
    omega = -AMPLITUDE * np.sqrt(w2) * np.sin(phase)
    out = np.empty((len(phase), seq_len))
    for t in range(seq_len):
        out[:, t] = theta
        for _ in range(SUBSTEPS):
            theta, omega = _rk4(theta, omega, w2, damp, DT / SUBSTEPS)
    return out


def render(theta: np.ndarray, length: np.ndarray, color: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """Sensor readings (N, T, 3·6·6) float32 in [0, 1] of angles θ (N, T)."""
    r = (LENGTHS[length] / LENGTHS.max())[:, None]  # (N, 1): radius in the unit sensor box
    bx, by = r * np.sin(theta), -r * np.cos(theta)  # (N, T)
    d2 = (bx[..., None, None] - SENSOR_X) ** 2 + (by[..., None, None] - SENSOR_Y) ** 2  # (N, T, 6, 6)
    width = MASS_WIDTH[mass][:, None, None, None]
    blob = np.exp(-0.5 * d2 / width ** 2)  # (N, T, 6, 6)
    img = COLORS[color][:, None, :, None, None] * blob[:, :, None]  # (N, T, 3, 6, 6)
    return img.reshape(len(theta), theta.shape[1], -1).astype(np.float32)


def make_oscillators(n: int, *, seq_len: int = 16, seed: int = 0) -> SequenceData:
    """``n`` pendulum sequences of ``seq_len`` steps with all factors drawn uniformly."""
    if n < 1 or seq_len < 2:
        raise ValueError(f"need n >= 1 sequences of seq_len >= 2 steps, got n={n}, seq_len={seq_len}")
    rng = np.random.default_rng(seed)
    length = rng.integers(0, len(LENGTHS), n)
    color = rng.integers(0, len(COLORS), n)
    mass = rng.integers(0, len(MASS_NAMES), n)
    phase_bin = rng.integers(0, PHASE_BINS, n)
    phase = 2 * np.pi * (phase_bin + rng.uniform(0.1, 0.9, n)) / PHASE_BINS
    theta = simulate_angles(length, mass, phase, seq_len)
    x = render(theta, length, color, mass)
    labels = {"length": length, "color": color, "mass": mass, "phase": phase_bin}
    return SequenceData(x=torch.from_numpy(x), labels={k: torch.from_numpy(v.astype(np.int64)) for k, v in labels.items()},
                        factors=oscillator_factors(), name="oscillators")


def oscillators_split(n_train: int, n_test: int, *, seq_len: int = 16, seed: int = 0) -> tuple[SequenceData, SequenceData | None]:
    """Independent train and test sets (different generator streams of the same seed)."""
    train = make_oscillators(n_train, seq_len=seq_len, seed=seed)
    test = make_oscillators(n_test, seq_len=seq_len, seed=seed + 7919) if n_test else None
    return train, test
