"""Where one SKD training step's time goes, measured with torch.profiler.

    PYTHONPATH=src python benchmarks/profile_step.py --preset sprites --threads 1 --trace sprites.json
    PYTHONPATH=src python benchmarks/profile_step.py --preset fast --data data/sprites

The step is the one ``skd train`` runs (batch from uint8 data in memory, forward, all losses,
backward, the finiteness guard, Adam) with the execution plan of ``--precision`` /
``--memory-format`` (default ``auto``, as training). After ``--warmup`` steps, ``--steps`` steps
run under the profiler. Every operator's self time (on the thread that runs the step; intra-op
threads work inside their operator) goes to one category:

- its own name first: dtype casts (``aten::_to_copy``, ``ToCopyBackward0``: autocast's casts
  and the casts back to float32) and layout conversions (``aten::contiguous``, ``aten::clone``,
  the copies a ``reshape`` makes);
- otherwise the innermost labelled scope around it: one label per convolution layer (put on by
  module hooks of this script), the encoder's / decoder's BatchNorm + activations, each LSTM,
  and the scopes that :class:`skd.model.KoopmanAE` and :func:`skd.model.losses.compute_losses`
  open (``koopman fit``, ``spectral loss``, ``mse losses``), plus ``data``, ``backward``,
  ``grad guard`` and ``optimizer`` here;
- a backward operator takes the label of the forward operator that created it (matched by the
  autograd sequence number), with ``backward`` appended.

It prints a markdown table (category, ms/step, % of the profiled step; the rows add up to the
step) and writes a Chrome trace (open it at chrome://tracing or https://ui.perfetto.dev). The
profiler itself adds a few per cent per step; the unprofiled median step time is printed beside.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function

CASTS = {"aten::_to_copy", "aten::to", "ToCopyBackward0"}
LAYOUT = {"aten::contiguous", "aten::clone", "aten::_reshape_alias_copy", "CloneBackward0", "aten::to_dense",
          "aten::to_mkldnn"}
BACKWARD_PREFIX = "autograd::engine::evaluate_function: "
CAST_CAT = "dtype casts (autocast, back to fp32)"
LAYOUT_CAT = "layout conversions (copies)"
OTHER_BWD = "other ops backward (views, dropout, loss sum)"
OTHER = "other (Python, autograd glue)"


def _label_modules(model: nn.Module) -> list[str]:
    """Open a ``record_function`` scope around every frame-network layer and each LSTM; returns the labels."""
    labels: list[str] = []

    def scoped(module: nn.Module, label: str) -> None:
        stack: list[record_function] = []

        def pre(_m, _inp):
            rf = record_function(label)
            rf.__enter__()
            stack.append(rf)

        def post(_m, _inp, _out):
            stack.pop().__exit__(None, None, None)

        module.register_forward_pre_hook(pre)
        module.register_forward_hook(post)
        if label not in labels:
            labels.append(label)

    for part, net in (("encoder", model.frame_encoder), ("decoder", model.frame_decoder)):
        i = 0
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                i += 1
                kind = "deconv" if isinstance(m, nn.ConvTranspose2d) else "conv" if isinstance(m, nn.Conv2d) else "linear"
                shape = f" {m.in_channels}->{m.out_channels}" if hasattr(m, "in_channels") else f" {m.in_features}->{m.out_features}"
                scoped(m, f"{part} {kind}{i}{shape}")
            elif isinstance(m, (nn.BatchNorm2d, nn.LayerNorm, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU)):
                scoped(m, f"{part} norm + activations")
    for name in ("enc_lstm", "dec_lstm"):
        lstm = getattr(model, name).lstm
        if lstm is not None:
            scoped(lstm, f"{name.replace('_', ' ')}")
    return labels


def _categorise(events, labels: set[str]) -> dict[str, float]:
    """Self CPU time (µs, summed over the profiled steps) per category; see the module docstring."""
    fwd_label: dict[int, str] = {}

    def scope_of(ev) -> tuple[str | None, object]:
        """(category, the event that decided it) from ``ev``'s own name or its innermost labelled ancestor."""
        e = ev
        while e is not None:
            name = e.name
            if name in CASTS:
                return CAST_CAT, e
            if name in LAYOUT:
                return LAYOUT_CAT, e
            if name.startswith(BACKWARD_PREFIX):
                fwd = fwd_label.get(e.sequence_nr)
                return (f"{fwd} backward" if fwd else OTHER_BWD), e
            if name in labels:
                return name, e
            e = e.cpu_parent
        return None, None

    # forward ops that create autograd nodes carry the sequence number their backward op shows
    for ev in events:
        if ev.sequence_nr >= 0 and not ev.name.startswith(BACKWARD_PREFIX):
            cat, _ = scope_of(ev)
            if cat is not None and cat in labels and ev.sequence_nr not in fwd_label:
                fwd_label[ev.sequence_nr] = cat
    totals: dict[str, float] = defaultdict(float)
    for ev in events:
        if ev.name != "step" and not _inside_step(ev):
            continue
        cat, _ = scope_of(ev)
        totals[cat or OTHER] += ev.self_cpu_time_total
    return totals


def _inside_step(ev) -> bool:
    e = ev.cpu_parent
    while e is not None:
        if e.name == "step":
            return True
        e = e.cpu_parent
    return False


def coarse(cat: str) -> str:
    """The group of a category in the second, short table."""
    bwd = " backward" if cat.endswith(" backward") else " forward"
    if cat.startswith(CAST_CAT):
        return CAST_CAT + " (forward + backward)"
    if cat.startswith(LAYOUT_CAT):
        return LAYOUT_CAT + " (forward + backward)"
    if cat in (OTHER, OTHER_BWD):
        return "other (Python glue, views, dropout, loss sum; forward + backward)"
    if " conv" in cat or " deconv" in cat or " linear" in cat:
        return "convolutions" + bwd
    if "norm + activations" in cat:
        return "BatchNorm + activations" + bwd
    if "lstm" in cat:
        return "LSTMs (forward + backward)"
    if cat.startswith(("koopman fit", "spectral loss")):
        return "Koopman fit + eigendecomposition (forward + backward)"
    if cat.startswith("mse losses"):
        return "MSE losses (forward + backward)"
    return {"data": "data", "grad": "grad guard", "optimizer": "optimizer (Adam)"}.get(cat.split()[0], OTHER)


def build(args: argparse.Namespace):
    """Model, optimizer, config and a batch iterator, as ``skd train`` builds them."""
    from skd.config import load_config, resolve_model_config
    from skd.data.base import SequenceData
    from skd.model.precision import apply_plan, resolve_plan
    from skd.training.loop import build_model

    cfg = load_config(args.preset, args.overrides)
    n = args.batch * 4
    if args.data:
        from skd.data.sprites import load_sprites
        x8 = load_sprites(args.data, "train").x[:n]
    else:
        gen = torch.Generator().manual_seed(0)
        c, s = cfg.model.channels, cfg.data.image_size if cfg.data.name == "shapes" else 64
        x8 = torch.randint(0, 256, (n, 8, c, s, s), dtype=torch.uint8, generator=gen)
    data = SequenceData(x=x8)
    cfg = dataclasses.replace(cfg, model=resolve_model_config(cfg.model, data.frame_shape))
    torch.manual_seed(0)
    model = build_model(cfg)
    plan = resolve_plan(args.precision, args.memory_format, False, torch.device("cpu"), cfg.model.kind)
    apply_plan(model, plan)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    batches = [torch.arange(i * args.batch, (i + 1) * args.batch) for i in range(4)]

    def forever():
        while True:
            for idx in batches:
                yield idx

    return model, opt, cfg, data, forever(), plan


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="sprites", help="sprites (paper size) | fast | any preset or TOML file")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="config override")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3, help="profiled steps")
    ap.add_argument("--warmup", type=int, default=2, help="unprofiled steps first (their median is printed)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--precision", default="auto", help="auto | fp32 | bf16 (train.precision)")
    ap.add_argument("--memory-format", default="auto", help="auto | channels_last | contiguous (train.memory_format)")
    ap.add_argument("--data", default="", help="a built Sprites folder (default: random uint8 frames of the preset's shape)")
    ap.add_argument("--trace", default="profile_step_trace.json", help="Chrome trace file to write")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.warmup < 1:
        ap.error("--steps and --warmup must be >= 1")

    from skd.model.losses import compute_losses
    from skd.training.loop import grads_finite

    torch.set_num_threads(args.threads)
    model, opt, cfg, data, order, plan = build(args)
    labels = _label_modules(model)
    labels += ["data", "koopman fit", "spectral loss", "mse losses", "grad guard", "optimizer", "backward"]

    def step() -> None:
        with record_function("step"):
            with record_function("data"):
                x = data.batch(next(order))
            out = model(x, ridge=cfg.loss.ridge, rcond=cfg.loss.rcond)
            total, _ = compute_losses(x, out, cfg.loss)
            opt.zero_grad(set_to_none=True)
            with record_function("backward"):
                total.backward()
            with record_function("grad guard"):
                ok = grads_finite(model)
            if ok:
                with record_function("optimizer"):
                    opt.step()

    model.train()
    times = []
    for _ in range(args.warmup):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t = time.perf_counter()
        for _ in range(args.steps):
            step()
        prof_s = (time.perf_counter() - t) / args.steps
    events = prof.events()
    totals = _categorise(events, set(labels))
    step_us = sum(ev.cpu_time_total for ev in events if ev.name == "step") / args.steps
    Path(args.trace).parent.mkdir(parents=True, exist_ok=True)
    prof.export_chrome_trace(args.trace)

    print(f"preset {args.preset} {' '.join(args.overrides)}, batch {args.batch} × {data.x.shape[1]} frames, "
          f"{args.threads} thread(s), torch {torch.__version__}; {plan.describe()}")
    print(f"unprofiled step (median of {args.warmup} warm-up steps, the first included): {1e3 * statistics.median(times):.1f} ms; "
          f"profiled step (mean of {args.steps}): {1e3 * prof_s:.1f} ms, of which the profiler's 'step' scope {step_us / 1e3:.1f} ms")
    print(f"Chrome trace: {args.trace}")
    print()
    print("| category | ms/step | % of step |")
    print("|---|---|---|")
    total_us = sum(totals.values()) / args.steps
    for cat, us in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"| {cat} | {us / args.steps / 1e3:.1f} | {100 * us / args.steps / step_us:.1f} |")
    print(f"| **sum** | **{total_us / 1e3:.1f}** | **{100 * total_us / step_us:.1f}** |")
    groups: dict[str, float] = defaultdict(float)
    for cat, us in totals.items():
        groups[coarse(cat)] += us
    print()
    print("| group | ms/step | % of step |")
    print("|---|---|---|")
    for cat, us in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"| {cat} | {us / args.steps / 1e3:.1f} | {100 * us / args.steps / step_us:.1f} |")


if __name__ == "__main__":
    main()
