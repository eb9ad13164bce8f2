"""What each part of the eigen split carries: linear probes of every labelled factor.

For a trained run, the test split is encoded, C is fitted per batch of ``--batch-size``
sequences (the reference protocol's split of Eq. 5), and every sequence is cut into its static
part (time mean of z_S, k numbers) and its dynamic trajectory (z − z_S over all frames, T·k
numbers). A logistic regression per factor, 3-fold cross-validated, reads the factor from each
part. A disentangled model reads the appearance from the static part only and the action from
the dynamic part only; the static/dynamic dependence L_indep (skd.model.independence, debiased
linear CKA) is printed too, per batch of 32 and of ``--batch-size``, and so is the swap round
trip that L_swap (skd.model.swap) trains: each sequence of a batch gets its neighbour's static
part, is decoded and encoded again, and 1 − R² says how much of the donor's static part and of
its own dynamic part the re-encoded swap misses (0 = a perfect round trip).

    python benchmarks/part_probes.py --run weights/sprites --data data/sprites
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from _test_split import add_test_split_args, load_model_and_test


def parts_of(model, cfg, x: torch.Tensor, batch_size: int) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """(static (N, k), dynamic (N, T*k), L_indep per batch) under the eigen split of each batch."""
    from skd.koopman import fit_koopman
    from skd.model.independence import static_dynamic_dependence, static_projector
    from skd.pipelines.ops import encode

    z = encode(model, x).double()  # (N, T, k)
    stat, dyn, dep = [], [], []
    for i in range(0, len(z) - batch_size + 1, batch_size):
        zb = z[i : i + batch_size]
        C = fit_koopman(zb.float(), ridge=cfg.loss.ridge, rcond=cfg.loss.rcond).double()
        proj = static_projector(C, cfg.loss.static_size, cfg.loss.static_criterion)
        if proj is None:
            raise SystemExit(f"batch {i // batch_size}: no separable static set (loss.static_size={cfg.loss.static_size})")
        zs = (zb @ proj[0]) @ proj[1]  # (B, T, k)
        stat.append(zs.mean(1))
        dyn.append((zb - zs).flatten(1))
        dep.append(float(static_dynamic_dependence(zb, proj)))
    return torch.cat(stat).numpy(), torch.cat(dyn).numpy(), dep


def round_trip(model, cfg, x: torch.Tensor, batch_size: int) -> dict[str, float]:
    """Mean swap round-trip misses {static, dynamic} (1 − R² each) over batches of ``batch_size``."""
    from skd.koopman import fit_koopman
    from skd.model.independence import static_projector
    from skd.model.swap import swap_consistency, swap_partner, swapped_latents
    from skd.pipelines.ops import decode, encode

    static, dynamic = [], []
    for i in range(0, len(x) - batch_size + 1, batch_size):
        z = encode(model, x[i : i + batch_size])  # (B, T, k)
        C = fit_koopman(z, ridge=cfg.loss.ridge, rcond=cfg.loss.rcond)
        proj = static_projector(C, cfg.loss.static_size, cfg.loss.static_criterion)
        if proj is None:
            continue
        partner = swap_partner(len(z))
        z_cycle = encode(model, decode(model, swapped_latents(z, proj, partner)))
        miss = swap_consistency(z, z_cycle, proj, partner)
        static.append(float(miss.static))
        dynamic.append(float(miss.dynamic))
    if not static:
        raise SystemExit(f"no batch has a separable static set (loss.static_size={cfg.loss.static_size})")
    return {"static": float(np.mean(static)), "dynamic": float(np.mean(dynamic))}


def probe(features: np.ndarray, labels: np.ndarray, seed: int) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    x = (features - features.mean(0)) / (features.std(0) + 1e-9)
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=seed)
    return float(cross_val_score(LogisticRegression(max_iter=3000), x, labels, cv=folds).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_test_split_args(ap)
    args = ap.parse_args()
    model, cfg, test, n = load_model_and_test(args)
    x = test.batch(torch.arange(n), "cpu")
    stat, dyn, dep = parts_of(model, cfg, x, args.batch_size)
    _, _, dep32 = parts_of(model, cfg, x[:1024], 32)
    rows = {}
    print(f"{args.run}: {n} test sequences, C per batch of {args.batch_size}")
    print("| factor | from the static part | from the dynamic part | chance |")
    print("|---|---|---|---|")
    for name, lab in test.labels.items():
        y = lab[:n].numpy()
        chance = float(np.bincount(y).max() / len(y))
        rows[name] = {"static": probe(stat, y, args.seed), "dynamic": probe(dyn, y, args.seed), "chance": chance}
        r = rows[name]
        print(f"| {name} | {100 * r['static']:.1f} % | {100 * r['dynamic']:.1f} % | {100 * chance:.1f} % |")
    trip = round_trip(model, cfg, x, args.batch_size)
    out = {"run": args.run, "n": n, "batch_size": args.batch_size, "probes": rows,
           "indep": {"batch": float(np.mean(dep)), "batch32": float(np.mean(dep32))}, "round_trip": trip}
    print(f"L_indep (debiased linear CKA, static code vs dynamic trajectory): {out['indep']['batch']:.3f} per batch of "
          f"{args.batch_size}, {out['indep']['batch32']:.3f} per batch of 32")
    print(f"swap round trip, 1 − R² of the donor's static part / of the own dynamic part: {trip['static']:.3f} / "
          f"{trip['dynamic']:.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
