"""Where a kept head goes wrong in Protocol B's swap: by the sources' labels.

Protocol B keeps each sequence's static part and takes the dynamic part of another one (the
reference protocol: eigen split of Eq. 5, C refitted per test batch of ``--batch-size``). When
the judge then misreads a kept appearance head (say skin), two explanations predict different
patterns:

- **leak**: the dynamic part carries the other sequence's appearance, and the decoder draws it:
  the wrong readings are the *dynamic source's* label (far above the 1/(classes − 1) of a
  random mistake);
- **precision**: the static part holds the appearance only roughly, and a new pose brings out
  the error: the wrong readings are neighbouring classes, whatever the dynamic source is, and
  the error rate depends on the poses of the two sources.

The script prints the accuracy of ``--head``, the share of its errors that read the dynamic
source's label, and the error rate by the static source's and by the dynamic source's ``--by``
label (the action on Sprites) and by the true class.

    python benchmarks/swap_errors.py --run weights/sprites --judge weights/judge --data data/sprites --head skin
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from _test_split import add_test_split_args, load_model_and_test


def swap_readings(model, loss, judge, test, head: str, n: int, batch_size: int, seed: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(read (N,), dynamic source index (N,)) of Protocol B swaps of the first n test sequences:
    the judge's reading of ``head`` and, per sequence, which sequence gave its dynamic part."""
    from skd.evaluation.judge import judge_probs
    from skd.pipelines import ops
    from skd.pipelines.basis import BasisSpec, basis_from_latents

    fit = BasisSpec.from_loss(loss, split="eigen", seed=seed)
    g = torch.Generator().manual_seed(seed)
    read, source = [], []
    for a in range(0, n, batch_size):
        x = test.batch(torch.arange(a, a + batch_size))
        with torch.no_grad():
            z = ops.encode(model, x)  # (B, T, k)
            basis = basis_from_latents(z, fit)
            m = z.shape[0]
            perm = (torch.arange(m) + torch.randint(1, m, (m,), generator=g)) % m  # another sequence
            frames = ops.decode(model, ops.swap_latents(z[perm], z, basis))  # perm's motion, own look
            read.append(judge_probs(judge, frames)[head].argmax(-1).numpy())
        source.append(a + perm.numpy())
    return np.concatenate(read), np.concatenate(source)


def error_table(wrong: np.ndarray, labels: np.ndarray, factor) -> dict[str, float]:
    """Error rate per label value {name: rate} (values that occur; unnamed values by number)."""
    names = list(factor.values) or [str(v) for v in range(factor.size)]
    return {names[v]: float(wrong[labels == v].mean()) for v in range(factor.size) if (labels == v).any()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_test_split_args(ap)
    ap.add_argument("--judge", required=True, help="judge folder or judge.pt")
    ap.add_argument("--head", default="skin", help="the kept (static) head to examine (default skin)")
    ap.add_argument("--by", default="action", help="the label the errors are broken down by (default action)")
    args = ap.parse_args()
    from skd.evaluation.judge import check_judge_matches, load_judge
    from skd.model.fold import inference_copy

    model, cfg, test, n = load_model_and_test(args)
    model = inference_copy(model)
    judge, _ = load_judge(args.judge)
    judge = inference_copy(judge, channels_last=True)
    check_judge_matches(judge, test)
    factors = {f.name: f for f in test.factors}
    for name in (args.head, args.by):
        if name not in factors:
            raise SystemExit(f"error: no factor {name!r} in the data (factors: {', '.join(factors)})")
    read, source = swap_readings(model, cfg.loss, judge, test, args.head, n, args.batch_size, args.seed)
    true = test.labels[args.head].numpy()[:n]
    by = test.labels[args.by].numpy()[:n]
    wrong = read != true
    differ = wrong & (true[source] != true)  # errors where the dynamic source's label is another one
    k = factors[args.head].size
    out = {
        "run": args.run, "n": n, "head": args.head, "accuracy": float(1 - wrong.mean()),
        "errors": int(wrong.sum()),
        "errors_reading_the_dynamic_source": float((read[differ] == true[source][differ]).mean()) if differ.any() else 0.0,
        "random_error_share": 1.0 / (k - 1),
        "error_by_static_source": error_table(wrong, by, factors[args.by]),
        "error_by_dynamic_source": error_table(wrong, by[source], factors[args.by]),
        "error_by_class": error_table(wrong, true, factors[args.head]),
    }
    print(f"{args.run}: Protocol B swap, {n} test sequences, C per batch of {args.batch_size}")
    print(f"{args.head}: accuracy {100 * out['accuracy']:.1f} % ({out['errors']} errors); errors that read the "
          f"dynamic source's {args.head}: {100 * out['errors_reading_the_dynamic_source']:.1f} % "
          f"(a random mistake: {100 * out['random_error_share']:.1f} %)")
    print(f"| {args.by} | error, as the static source | error, as the dynamic source |")
    print("|---|---|---|")
    for name in out["error_by_static_source"]:
        print(f"| {name} | {100 * out['error_by_static_source'][name]:.1f} % | "
              f"{100 * out['error_by_dynamic_source'].get(name, float('nan')):.1f} % |")
    print("error by true class: " + ", ".join(f"{c} {100 * r:.1f} %" for c, r in out["error_by_class"].items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
