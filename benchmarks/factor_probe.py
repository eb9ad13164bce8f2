"""Where does each factor live in a trained model's latents? (diagnostic for docs/MULTIFACTOR.md)

For a run and a Sprites-like dataset with labels, fit the factor groups exactly as `skd factors`
does (C, ICA basis and motion directions on ``--fit-batch`` training sequences), then train
linear probes (standardised features, logistic regression, first half of the sequences to fit,
second half to score) for every labelled factor from:

* ``static-app``: the time-averaged static ICA coordinates outside the motion group — what the
  label-free factor swaps can move;
* ``static-all``: all static coordinates, motion group included;
* ``dyn-mean``: the time-average of the dynamic part z − z P_S (k numbers);
* ``dyn-flat``: the whole dynamic trajectory (T·k numbers);
* ``full-mean``: the time-average of z.

It also prints the R² of a linear regression of ``dyn-mean`` on ``static-app``: the share of the
appearance-dependent offset of the dynamic part that a static swap could carry along linearly.

    PYTHONPATH=src python benchmarks/factor_probe.py --run runs/fast32 --data data/sprites32
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from skd.pipelines import ops
from skd.data import data_config_from_spec, load_dataset
from skd.pipelines.basis import BasisSpec
from skd.pipelines.factorset import MOTION, fit_factors, fit_indices
from skd.training.loop import load_run


def probe(x: np.ndarray, y: np.ndarray, half: int) -> float:
    x = StandardScaler().fit_transform(x)
    return float(LogisticRegression(max_iter=2000).fit(x[:half], y[:half]).score(x[half:], y[half:]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", required=True, help="run folder or checkpoint file")
    ap.add_argument("--data", required=True, help="a built Sprites folder")
    ap.add_argument("--fit-batch", type=int, default=2048)
    ap.add_argument("--n-factors", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    model, cfg = load_run(args.run)
    train, _ = load_dataset(data_config_from_spec(args.data, cfg.data))
    fs = fit_factors(model, train, BasisSpec.from_loss(cfg.loss, fit_batch=args.fit_batch, seed=args.seed), n_groups=args.n_factors)
    idx = fit_indices(len(train), args.fit_batch, args.seed)  # the sequences the groups were fitted on
    z = ops.encode(model, train.batch(idx)).to(torch.float64)  # (N, T, k)
    units = fs.free.units
    p_s = units.projector(list(range(len(units.columns))))
    r = (z @ units.to_coords).mean(1).numpy()  # (N, d)
    dyn = z - z @ p_s
    motion = [u for u, g in enumerate(fs.free.labels) if fs.free.names and fs.free.names[g] == MOTION]
    app_cols = [c for u in range(len(units.columns)) if u not in motion for c in units.columns[u]]
    feats = {"static-app": r[:, app_cols], "static-all": r, "dyn-mean": dyn.mean(1).numpy(),
             "dyn-flat": dyn.reshape(len(z), -1).numpy(), "full-mean": z.mean(1).numpy()}
    half = len(z) // 2
    rows = {}
    print(f"{len(z)} training sequences; static coordinates {r.shape[1]} ({len(app_cols)} outside the motion group)")
    print("| factor | " + " | ".join(feats) + " |")
    print("|---" * (len(feats) + 1) + "|")
    for f in [f.name for f in train.factors if f.name in train.labels]:
        y = train.labels[f][idx].numpy()
        rows[f] = {name: probe(x, y, half) for name, x in feats.items()}
        print(f"| {f} | " + " | ".join(f"{100 * v:.1f} %" for v in rows[f].values()) + " |")
    s = np.c_[feats["static-app"], np.ones(len(r))]
    m = feats["dyn-mean"]
    w, *_ = np.linalg.lstsq(s[:half], m[:half], rcond=None)
    res = m[half:] - s[half:] @ w
    r2 = float(1 - res.var(0).sum() / m[half:].var(0).sum())
    print(f"R² of dyn-mean regressed on static-app (held-out half): {r2:.3f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"probe_accuracy": rows, "r2_dyn_mean_on_static_app": r2, "n": len(z)}, fh, indent=1)


if __name__ == "__main__":
    try:
        main()
    except (FileNotFoundError, ValueError) as e:  # a missing run or data folder, unlabelled data
        raise SystemExit(f"factor_probe: error: {e}") from None
