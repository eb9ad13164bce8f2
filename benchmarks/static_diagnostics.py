"""Where does a trained Sprites model keep the action? Two label-using diagnostics of the static set.

1. Per static eigen-component probe: for the eigen-components closest to λ = 1 (C fitted on the
   first ``--probe-n`` test sequences), a linear probe (4-fold cross-validation) reads each judge
   label from that component alone (time-averaged real and imaginary parts, first and last frame).
   If one component carried the action, it could be moved out of the static set; if every static
   component carries a little, no choice of static set removes it.
2. Protocol A (sample) and Protocol B (sample) accuracy when the evaluation uses a different
   number of static components ``k_s`` than training did (one draw, whole test split).

    PYTHONPATH=src python benchmarks/static_diagnostics.py --run runs/fast --data data/sprites \\
        --judge judges/sprites --static-sizes 4,5,6,7,8

Labels are used only to diagnose; nothing here changes the label-free protocols.
"""
from __future__ import annotations

import argparse
import dataclasses

import torch

from skd.pipelines import ops
from skd.data import load_dataset
from skd.evaluation.two_factor import evaluate_two_factor
from skd.evaluation.judge import load_judge
from skd.koopman import to_eigen
from skd.evaluation.probes import chance_level, cv_probe_accuracy
from skd.training.loop import load_run


def component_features(a: torch.Tensor) -> torch.Tensor:
    """Features (N, 4m) of one component's eigen-coordinates a (N, T, m) complex, standardised."""
    f = torch.cat([a.real.mean(1), a.imag.mean(1), a.real[:, 0], a.real[:, -1]], -1).float()
    return (f - f.mean(0)) / (f.std(0) + 1e-9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--data", required=True, help="built Sprites folder")
    ap.add_argument("--judge", required=True)
    ap.add_argument("--probe-n", type=int, default=768, help="test sequences for the per-component probe")
    ap.add_argument("--components", type=int, default=12, help="components closest to 1 to probe")
    ap.add_argument("--static-sizes", default="", help="k_s values to evaluate, e.g. 4,5,6,7,8 (empty: skip)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    model, cfg = load_run(args.run)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, path=args.data))
    _, test = load_dataset(cfg.data)
    n = min(args.probe_n, len(test))
    z = ops.encode(model, test.batch(torch.arange(n)))
    basis = ops.fit_basis(z, cfg.loss.static_size, cfg.loss.static_criterion)
    coords = to_eigen(z, basis.eig)  # (N, T, k) complex
    values, comp = basis.eig.values, basis.eig.component
    heads = [f.name for f in test.factors]  # the judge's heads are the dataset's declared factors
    labels = {h: test.labels[h][:n] for h in heads}
    print(f"per-component linear probe, {n} test sequences, C fitted on them (k_s = {cfg.loss.static_size})")
    print("| λ | static | " + " | ".join(heads) + " |\n|---|---|" + "---|" * len(heads))
    seen: list[int] = []
    for i in torch.argsort((values - 1).abs()).tolist():
        c = int(comp[i])
        if c in seen:
            continue
        seen.append(c)
        if len(seen) > args.components:
            break
        feats = component_features(coords[:, :, comp == c])
        accs = [100 * cv_probe_accuracy(feats, labels[h]) for h in heads]
        print(f"| {complex(values[i]):.3f} | {'yes' if bool(basis.static[i]) else 'no'} | "
              + " | ".join(f"{a:.1f}" for a in accs) + " |", flush=True)
    print("chance: " + ", ".join(f"{h} {100 * chance_level(labels[h]):.1f} %" for h in heads))

    if args.static_sizes:
        judge, sha = load_judge(args.judge)
        print(f"\nevaluation with another k_s (one draw, {len(test)} test sequences, judge {sha[:12]})")
        dyn = [f.name for f in test.factors if f.kind == "dynamic"]
        sta = [f.name for f in test.factors if f.kind == "static"]
        print("| k_s | " + " | ".join(f"A sample {h} | A IS ({h})" for h in dyn) + " | "
              + " | ".join(f"B sample {h}" for h in sta) + " |")
        for ks in (int(t) for t in args.static_sizes.split(",")):
            c2 = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, static_size=ks))
            rep = evaluate_two_factor(model, c2, judge, test, repeats=1, seed=0, progress=False,
                                      only=(("A", "sample"), ("B", "sample")), sanity=False)
            a, b = rep.table["A"]["sample"], rep.table["B"]["sample"]
            cells = [f"{100 * a[h]['acc']['mean']:.2f} % | {a[h]['is']['mean']:.3f}" for h in dyn]
            cells += [f"{100 * b[h]['acc']['mean']:.1f} %" for h in sta]
            print(f"| {ks} | " + " | ".join(cells) + " |", flush=True)

if __name__ == "__main__":
    main()
