"""The built-in demo: generate the shapes data, train briefly on CPU, write a browsable report."""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..pipelines import ops
from ..files.checkpoint import atomic_write_text
from ..config import Config, about
from ..data import load_dataset
from ..data.base import SequenceData
from ..pipelines.basis import BasisSpec, fit_reference_basis
from ..pipelines.pairs import pick_pairs
from .swaps import write_loss_plot, write_samples, write_swaps
from ..training.loop import train
from ..evaluation.judge import Judge, check_judge_matches
from ..evaluation.two_factor import TwoFactorSpec, evaluate_judges

# what a good 3-minute demo model reaches on its swaps, read by a judge of the built-in data
JUDGE_TARGETS = {"on_target": 0.90, "motion_kept": 0.95}

DEMO_MARKER = ".skd-demo"


@dataclass(frozen=True)
class DemoResult:
    out_dir: Path
    summary: dict
    seconds: float


def prepare_out_dir(out_dir: Path) -> None:
    """Use ``out_dir`` if empty or an earlier demo output (replaced); refuse anything else."""
    if out_dir.exists():
        if not out_dir.is_dir():
            raise about("out_dir", NotADirectoryError(f"{out_dir} exists and is not a folder"))
        if any(out_dir.iterdir()):
            if not (out_dir / DEMO_MARKER).exists():
                raise about("out_dir", FileExistsError(f"{out_dir} is not empty and is not an earlier demo output; "
                                                         "choose another folder"))
            shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / DEMO_MARKER).write_text("written by `skd demo`; the folder is replaced on the next demo run\n")


def pixel_swap_check(x_dyn: torch.Tensor, x_static: torch.Tensor, x_swap: torch.Tensor) -> dict[str, float]:
    """Label-free check of swaps on the shapes data, from pixels alone.

    Background colour (mean border pixel) should come from the appearance donor, and the
    foreground's centre-of-mass path from the motion donor. Inputs (P, T, 3, H, W) in [0, 1].
    Returns mean distances of the swap to each donor (lower = closer).
    """

    def border(v: torch.Tensor) -> torch.Tensor:  # (P, T, 3)
        return torch.cat([v[..., 0, :], v[..., -1, :], v[..., :, 0], v[..., :, -1]], dim=-1).mean(-1)

    def centroid(v: torch.Tensor) -> torch.Tensor:  # (P, T, 2) in pixels
        fg = ((v - border(v)[..., None, None]).abs().sum(2) > 0.3).float()  # (P, T, H, W)
        h, w = v.shape[-2:]
        mass = fg.sum((-2, -1)).clamp_min(1.0)
        cy = (fg.sum(-1) * torch.arange(h, dtype=v.dtype)).sum(-1) / mass
        cx = (fg.sum(-2) * torch.arange(w, dtype=v.dtype)).sum(-1) / mass
        return torch.stack([cy, cx], -1)

    bs, bd, bw = border(x_static), border(x_dyn), border(x_swap)
    cs, cd, cw = centroid(x_static), centroid(x_dyn), centroid(x_swap)
    return {
        "background_dist_to_look_donor": float((bw - bs).norm(dim=-1).mean()),
        "background_dist_to_motion_donor": float((bw - bd).norm(dim=-1).mean()),
        "path_dist_to_motion_donor_px": float((cw - cd).norm(dim=-1).mean()),
        "path_dist_to_look_donor_px": float((cw - cs).norm(dim=-1).mean()),
    }


def run_demo(cfg: Config, out_dir: str | Path, *, progress: bool = True, command: str | None = None,
             judge: tuple[Judge, str] | None = None) -> DemoResult:
    """Train on the built-in data for ``cfg.train.minutes`` and write the report into ``out_dir``.

    ``judge``: a judge of the built-in data and its SHA-256; the summary then scores the swaps
    with it (:func:`judge_swap_scores`).
    """
    t0 = time.time()
    out_dir = Path(out_dir)
    train_data, test_data = load_dataset(cfg.data)
    test_data = test_data if test_data is not None and len(test_data) >= 8 else train_data
    if judge is not None:
        check_judge_matches(judge[0], test_data)  # before training: a wrong judge costs nothing
    prepare_out_dir(out_dir)
    res = train(cfg, out_dir / "run", train_data, progress=progress, command=command)
    model, cfg = res.model, res.config
    basis = fit_reference_basis(model, test_data, BasisSpec.from_loss(cfg.loss))
    pairs = pick_pairs(test_data, 4)
    swaps = write_swaps(model, test_data, basis, pairs, out_dir)
    samples = write_samples(model, test_data, basis, out_dir)
    losses = write_loss_plot(out_dir / "run", out_dir / "losses.png")
    summary = _summarise(model, test_data, basis, cfg, res, time.time() - t0)
    if judge is not None:
        summary["judge_swaps"] = {**judge_swap_scores(model, cfg, judge[0], test_data, basis), "judge_sha256": judge[1]}
        summary["total_seconds"] = round(time.time() - t0, 1)
    summary["files"] = {"swaps": swaps.grid.name, "gif": swaps.gif.name, "eigenvalues": swaps.eigen_plot.name,
                        "samples": samples.name, "losses": losses.name if losses else None, "run": "run/"}
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(out_dir / "summary.md", _markdown(summary, cfg))
    return DemoResult(out_dir, summary, time.time() - t0)


def judge_swap_scores(model, cfg: Config, judge: Judge, data: SequenceData, basis: ops.KoopmanBasis) -> dict:
    """Two-factor swaps of every test sequence with another one (the demo's basis), read by
    ``judge``: ``on_target`` — each static head reads the LOOK donor's value (Protocol B, swap);
    ``motion_kept`` — the dynamic head(s) read the MOTION donor's value (Protocol A, swap);
    ``reconstruction`` — the judge on plain reconstructions (the ceiling of both)."""
    spec = TwoFactorSpec(repeats=1, batch_size=max(3, len(data)), only=(("A", "swap"), ("B", "swap")), basis=basis,
                         basis_note="the demo's basis")
    rep = evaluate_judges(model, cfg.loss, [judge], data, spec, progress=False)[0]
    static = {h: m["acc"]["mean"] for h, m in rep.table["B"]["swap"].items()}
    dynamic = {h: m["acc"]["mean"] for h, m in rep.table["A"]["swap"].items()}
    return {"on_target": static, "motion_kept": dynamic, "reconstruction": rep.sanity["judge_acc_on_reconstructions"],
            "targets": JUDGE_TARGETS, "n": rep.n}


def _summarise(model, data: SequenceData, basis: ops.KoopmanBasis, cfg: Config, res, seconds: float) -> dict:
    n = min(256, len(data))
    x = data.batch(torch.arange(n))
    z = ops.encode(model, x)
    mse = float(((ops.decode(model, z) - x) ** 2).mean())
    perm = torch.roll(torch.arange(n), 1)
    x_swap = ops.decode(model, ops.swap_latents(z, z[perm], basis))
    check = pixel_swap_check(x, x[perm], x_swap) if data.is_video else {}
    vals = basis.eig.values
    return {
        "train": {"steps": res.step, "epochs": res.epoch, "seconds": round(res.seconds, 1), "stopped_by": res.stopped,
                  "non_finite_steps": res.bad_steps, "last_losses": {k: round(v, 6) for k, v in res.last.items()}},
        "test_reconstruction_mse": mse,
        "swap_pixel_check": check,
        "spectrum": {"static": int(basis.static.sum()), "dynamic": int(basis.dynamic.sum()),
                     "static_abs_lambda_minus_1_max": float((vals[basis.static] - 1).abs().max()) if bool(basis.static.any()) else None,
                     "dynamic_abs_lambda_max": float(vals[basis.dynamic].abs().max()) if bool(basis.dynamic.any()) else None},
        "total_seconds": round(seconds, 1),
        "config": dataclasses.asdict(cfg),
    }


def _markdown(s: dict, cfg: Config) -> str:
    t, sp, ch = s["train"], s["spectrum"], s["swap_pixel_check"]
    lines = [
        "# skd demo",
        "",
        f"Trained a KoopmanAE (k={cfg.model.k}, width={cfg.model.width}, {cfg.data.image_size}×{cfg.data.image_size}) on "
        f"{cfg.data.n_train} built-in `shapes` sequences for {t['steps']} steps ({t['seconds']:.0f} s, stopped by {t['stopped_by']}).",
        "",
        "| file | what |",
        "|---|---|",
        "| `swap.png` / `swap.gif` | per pair: A, B, A's motion with B's look, B's motion with A's look |",
        "| `samples.png` | originals, with the static part resampled, with the dynamic part resampled |",
        "| `eigenvalues.png` | Koopman spectrum; static set near λ = 1 |",
        "| `losses.png` | training losses |",
        "| `run/` | the run: config, metrics.jsonl, checkpoint (use with `skd swap --run`) |",
        "",
        "## Numbers (test split)",
        "",
        f"- reconstruction MSE: {s['test_reconstruction_mse']:.5f}",
        f"- spectrum: {sp['static']} static eigenvalues (max |λ-1| = {_fmt(sp['static_abs_lambda_minus_1_max'])}), "
        f"{sp['dynamic']} dynamic (max |λ| = {_fmt(sp['dynamic_abs_lambda_max'])})",
    ]
    if ch:
        lines += [
            f"- swaps, background colour distance to the look donor {ch['background_dist_to_look_donor']:.3f} "
            f"vs to the motion donor {ch['background_dist_to_motion_donor']:.3f} (RGB, lower = taken from it)",
            f"- swaps, shape path distance to the motion donor {ch['path_dist_to_motion_donor_px']:.2f} px "
            f"vs to the look donor {ch['path_dist_to_look_donor_px']:.2f} px",
        ]
    js = s.get("judge_swaps")
    if js:
        on = ", ".join(f"{h} {100 * v:.1f} %" for h, v in js["on_target"].items())
        kept = ", ".join(f"{h} {100 * v:.1f} %" for h, v in js["motion_kept"].items())
        rec = ", ".join(f"{h} {100 * v:.1f} %" for h, v in js["reconstruction"].items())
        lines += [
            "",
            f"## Swaps read by a judge of the built-in data ({js['n']} test sequences, judge `{js['judge_sha256'][:12]}…`)",
            "",
            f"- the look (static heads read the look donor; target ≥ {100 * js['targets']['on_target']:.0f} %): {on}",
            f"- the motion (dynamic head reads the motion donor; target ≥ {100 * js['targets']['motion_kept']:.0f} %): {kept}",
            f"- plain reconstructions (the ceiling of both): {rec}",
        ]
    lines += ["", f"Total demo time: {s['total_seconds']:.0f} s.", ""]
    return "\n".join(lines)


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"
