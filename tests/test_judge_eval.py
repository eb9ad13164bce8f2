"""Judge training/loading and the two-factor evaluation on the built-in data."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from skd.cli.main import main
from skd.data import load_dataset
from skd.evaluation.two_factor import _batches, evaluate_two_factor, markdown_table
from skd.evaluation.judge import check_judge_matches, load_judge

from conftest import JUDGE_TINY, tiny_config, tiny_world


@pytest.fixture(scope="module", name="tiny_world")
def _tiny_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    run, jr, _, te = tiny_world(root)
    return root, run, jr, te


def test_judge_heads_follow_declared_factors(tiny_world) -> None:
    root, _, jr, te = tiny_world
    assert set(jr.judge.heads) == {f.name for f in te.factors}
    info = json.loads((root / "judge" / "judge.json").read_text())
    assert set(info["test_accuracy"]) == set(jr.judge.heads) and len(info["sha256"]) == 64
    judge, sha = load_judge(root / "judge")
    assert sha == info["sha256"]
    x = te.batch(torch.arange(4))
    with torch.no_grad():
        a, b = jr.judge.eval()(x), judge(x)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_judge_refuses_mismatched_data(tiny_world) -> None:
    _, _, jr, te = tiny_world
    other = load_dataset(tiny_config().data.__class__(name="shapes", n_train=8, n_test=4, image_size=64))[0]
    with pytest.raises(ValueError, match="judge reads frames"):
        check_judge_matches(jr.judge, other)


def test_evaluation_covers_every_sequence_and_both_protocols(tiny_world) -> None:
    _, run, jr, te = tiny_world
    rep = evaluate_two_factor(run.model, run.config, jr.judge, te, repeats=2, batch_size=6, progress=False)
    assert rep.n == len(te) == 16
    assert set(rep.table) == {"A", "B"}
    assert set(rep.table["A"]["sample"]) == {"motion"}
    assert set(rep.table["B"]["swap"]) == {"shape", "color", "size", "background"}
    for proto in rep.table.values():
        for heads in proto.values():
            for m in heads.values():
                assert 0 <= m["acc"]["mean"] <= 1 and m["is"]["mean"] >= 1 - 1e-9
    assert "| A | sample | motion |" in markdown_table(rep)
    assert set(rep.unchanged["B"]["swap"]) == {"motion"} and "A/sample: shape" in markdown_table(rep)
    assert all(0 <= m["mean"] <= 1 for p in rep.unchanged.values() for h in p.values() for m in h.values())
    for proto, manip in (("A", "sample"), ("B", "swap")):
        for head, m in rep.table[proto][manip].items():
            cm = np.array(rep.confusion[proto][manip][head])  # counts over both repeats
            labels = te.labels[head].numpy()
            assert cm.sum() == 2 * len(te) and (cm.sum(1) == 2 * np.bincount(labels, minlength=cm.shape[0])).all()
            assert np.trace(cm) / cm.sum() == pytest.approx(m["acc"]["mean"])


def test_fixed_basis_matches_refit_on_the_same_batch(tiny_world) -> None:
    """A fixed basis fitted on exactly the evaluation batch reproduces the per-batch refit, draw for
    draw; a basis fitted elsewhere changes the result, and is recorded in the report."""
    from skd.pipelines import ops
    from skd.pipelines.basis import BasisSpec, fit_reference_basis

    _, run, jr, te = tiny_world
    cfg = run.config
    only = (("A", "sample"), ("B", "swap"))
    refit = evaluate_two_factor(run.model, cfg, jr.judge, te, repeats=2, batch_size=len(te), progress=False, only=only)
    from skd.model.fold import inference_copy  # the evaluation encodes with BatchNorm folded

    z = ops.encode(inference_copy(run.model), te.batch(torch.arange(len(te))))
    same = ops.fit_basis(z, cfg.loss.static_size, cfg.loss.static_criterion, ridge=cfg.loss.ridge, rcond=cfg.loss.rcond)
    fixed = evaluate_two_factor(run.model, cfg, jr.judge, te, repeats=2, batch_size=len(te), progress=False, only=only,
                                basis=same, basis_note="the test split")
    assert fixed.table == refit.table and fixed.confusion == refit.confusion
    assert refit.static_split["fit"] == "per batch" and fixed.static_split["fit"] == "the test split"
    assert "fitted on the test split" in markdown_table(fixed)
    tr = load_dataset(cfg.data)[0]
    other = fit_reference_basis(run.model, tr, BasisSpec.from_loss(cfg.loss, fit_batch=0, seed=0))
    assert not torch.allclose(other.C, same.C)
    with pytest.raises(ValueError, match="refined split"):
        evaluate_two_factor(run.model, cfg, jr.judge, te, repeats=1, progress=False, split="refined", basis=other)


def test_unchanged_rate_exposes_a_split_that_replaces_nothing(tiny_world) -> None:
    """With an empty static part, Protocol A 'replaces' nothing: every replaced static head then
    reads exactly what it reads on plain reconstructions, and the static part has 0 dimensions."""
    import dataclasses

    from skd.pipelines import ops

    _, run, jr, te = tiny_world
    cfg = run.config
    z = ops.encode(run.model, te.batch(torch.arange(len(te))))
    basis = ops.fit_basis(z, cfg.loss.static_size, cfg.loss.static_criterion, ridge=cfg.loss.ridge, rcond=cfg.loss.rcond)
    empty = dataclasses.replace(basis, split=torch.zeros(z.shape[-1], z.shape[-1], dtype=torch.float64))
    assert empty.static_dims == 0 and basis.static_dims == int(basis.static.sum())
    rep = evaluate_two_factor(run.model, cfg, jr.judge, te, repeats=1, batch_size=len(te), progress=False,
                              only=(("A", "sample"),), basis=empty)
    on_rec = rep.sanity["judge_acc_on_reconstructions"]
    assert set(rep.unchanged["A"]["sample"]) == {"shape", "color", "size", "background"}
    for head, m in rep.unchanged["A"]["sample"].items():
        assert m["mean"] == pytest.approx(on_rec[head])
    assert rep.static_split["static_dims_min"] == rep.static_split["static_dims_max"] == 0
    assert "Static part: 0 of the k latent dimensions" in markdown_table(rep)


def test_batches_never_drop_sequences() -> None:
    for n, b in [(16, 6), (2664, 256), (10, 3), (257, 256)]:
        spans = _batches(n, b)
        assert spans[0][0] == 0 and spans[-1][1] == n
        assert all(s[1] == t[0] for s, t in zip(spans, spans[1:]))
        assert all(e - s >= 3 for s, e in spans)


def test_cli_judge_and_eval(tiny_world, tmp_path, capsys) -> None:
    root, _, _, _ = tiny_world
    sets = [a for s in JUDGE_TINY for a in ("--set", s)] + ["--set", "data.n_train=48", "--set", "data.n_test=16"]
    assert main(["judge", "train", "-q", "--data", "shapes", "--out", str(tmp_path / "j"), *sets]) == 0
    assert main(["eval", "-q", "--run", str(root / "run"), "--judge", str(tmp_path / "j"), "--repeats", "1",
                 "--batch-size", "8", "--out", str(tmp_path / "e.json")]) == 0
    rep = json.loads((tmp_path / "e.json").read_text())
    assert rep["judge_sha256"] and rep["table"]["A"]["swap"]["motion"]["acc"]["mean"] >= 0
    capsys.readouterr()
    # a checkpoint of the wrong kind is one clear line
    assert main(["eval", "two-factor", "--run", str(root / "run"), "--judge", str(root / "run" / "checkpoint.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "expected 'judge'" in err[0]
    # --protocols restricts the table to what was asked for
    assert main(["eval", "-q", "--run", str(root / "run"), "--judge", str(tmp_path / "j"), "--repeats", "1",
                 "--batch-size", "8", "--protocols", "A:sample", "--out", str(tmp_path / "a.json")]) == 0
    table = json.loads((tmp_path / "a.json").read_text())["table"]
    assert list(table) == ["A"] and list(table["A"]) == ["sample"]
    # the refined static split runs end to end and is recorded
    assert main(["eval", "-q", "--run", str(root / "run"), "--judge", str(tmp_path / "j"), "--repeats", "1",
                 "--batch-size", "16", "--protocols", "A:sample", "--static-split", "refined",
                 "--out", str(tmp_path / "r.json")]) == 0
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["static_split"]["kind"] == "refined" and rep["static_split"]["moved_per_batch_min"] >= 0
    assert 0 <= rep["table"]["A"]["sample"]["motion"]["acc"]["mean"] <= 1
    # one C (and refined split) fitted on training sequences, used for every test batch
    assert main(["eval", "-q", "--run", str(root / "run"), "--judge", str(tmp_path / "j"), "--repeats", "1",
                 "--batch-size", "8", "--protocols", "A:sample", "--static-split", "refined", "--fit-on", "train",
                 "--fit-batch", "40", "--out", str(tmp_path / "t.json")]) == 0
    rep = json.loads((tmp_path / "t.json").read_text())
    assert rep["static_split"]["kind"] == "refined" and rep["static_split"]["fit"] == "40 training sequences"
    capsys.readouterr()
    assert main(["eval", "--run", str(root / "run"), "--judge", str(tmp_path / "j"), "--fit-on", "train",
                 "--fit-batch", "1"]) == 2
    assert "--fit-batch=1" in capsys.readouterr().err
    assert main(["eval", "two-factor", "--run", str(root / "run"), "--judge", str(tmp_path / "j"), "--protocols", "C"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--protocols item 'C'" in err[0]


def test_parse_protocols() -> None:
    from skd.cli.eval_cmd import parse_protocols

    assert parse_protocols("A,B") == (("A", "sample"), ("A", "swap"), ("B", "sample"), ("B", "swap"))
    assert parse_protocols("B:swap, A:sample,A") == (("B", "swap"), ("A", "sample"), ("A", "swap"))
    for bad in ("", "A:flip", "a"):
        with pytest.raises(ValueError):
            parse_protocols(bad)


def _partition(d: dict) -> dict:
    """{name: sorted unit positions} of a group entry of factors.json."""
    names = d["names"] or [str(g) for g in range(d["n_groups"])]
    return {n: sorted(u for u, lab in enumerate(d["labels"]) if lab == g) for g, n in enumerate(names)}


def test_factors_swap_morph_multifactor_cli(tiny_world, tmp_path, capsys) -> None:
    root, _, _, _ = tiny_world
    run = str(root / "run")
    assert main(["factors", "-q", "--run", run, "--fit-batch", "16", "--n-factors", "2"]) == 0
    assert (root / "run" / "factors.json").exists() and (root / "run" / "factors" / "subsets.png").exists()
    fj = json.loads((root / "run" / "factors.json").read_text())
    name = fj["free"]["names"][0]
    assert main(["swap", "-q", "--run", run, "--factors", name, "--pairs", "0:1"]) == 0
    assert main(["morph", "-q", "--run", run, "--pairs", "0:1"]) == 0
    assert (root / "run" / "morph" / "morph.gif").exists()
    assert main(["eval", "-q", "--multifactor", "--run", run, "--judge", str(root / "judge"),
                 "--out", str(tmp_path / "mf.json")]) == 0
    res = json.loads((tmp_path / "mf.json").read_text())
    assert "label-free" in res and "supervised" in res
    assert set(res["reconstruction"]) == {"shape", "color", "size", "background", "motion"}
    assert all(0.0 <= v <= 1.0 for v in res["reconstruction"].values())
    assert "ceiling" in (tmp_path / "mf.md").read_text()
    free, sup = (_partition(fj[k]) for k in ("free", "supervised"))
    if free == sup:  # the same partition under the same names is scored once and marked
        assert res["supervised"]["same_as"] == "label-free" and res["supervised"]["matrix"] == res["label-free"]["matrix"]
    else:
        assert "same_as" not in res["supervised"]
    row = next(iter(res["label-free"]["matrix"].values()))
    assert set(row) == {"shape", "color", "size", "background", "motion"}
    capsys.readouterr()
    assert main(["swap", "--run", run, "--factors", "hat", "--pairs", "0:1"]) == 2
    assert "unknown factor 'hat'" in capsys.readouterr().err
    assert main(["factors", "--run", run, "--n-factors", "99"]) == 2
    assert "exceeds the" in capsys.readouterr().err
    assert main(["morph", "--run", str(tmp_path / "none")]) == 2
    # the decoder-footprint affinity: same units, another grouping rule, recorded in factors.json
    assert main(["factors", "-q", "--run", run, "--fit-batch", "16", "--n-factors", "2", "--affinity", "both"]) == 0
    fj2 = json.loads((root / "run" / "factors.json").read_text())
    assert fj2["affinity"] == "both" and fj2["units"]["to_coords"] == fj["units"]["to_coords"]
    assert len(fj2["free"]["labels"]) == len(fj["free"]["labels"])


def test_static_diagnostics_script_runs(tiny_world, monkeypatch, capsys) -> None:
    import importlib.util
    import sys
    from pathlib import Path

    root = tiny_world[0]
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "static_diagnostics.py"
    spec = importlib.util.spec_from_file_location("static_diagnostics", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(sys, "argv", ["static_diagnostics.py", "--run", str(root / "run"), "--data", "unused",
                                      "--judge", str(root / "judge"), "--probe-n", "16", "--components", "3",
                                      "--static-sizes", "1,2", "--threads", "1"])
    mod.main()
    out = capsys.readouterr().out
    assert len([line for line in out.splitlines() if "| yes |" in line or "| no |" in line]) == 3  # 3 components
    assert "\n| 1 | " in out and "\n| 2 | " in out and "chance:" in out


def test_factor_probe_script_scores_every_labelled_factor(tiny_world, monkeypatch, capsys, tmp_path) -> None:
    import importlib.util
    import sys
    from pathlib import Path

    root, _, _, te = tiny_world
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "factor_probe.py"
    spec = importlib.util.spec_from_file_location("factor_probe", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out_json = tmp_path / "probe.json"
    monkeypatch.setattr(sys, "argv", ["factor_probe.py", "--run", str(root / "run"), "--data", "shapes",
                                      "--n-factors", "1", "--json", str(out_json)])
    mod.main()
    res = json.loads(out_json.read_text())
    names = [f.name for f in te.factors if f.name in te.labels]
    assert sorted(res["probe_accuracy"]) == sorted(names)
    for row in res["probe_accuracy"].values():
        assert set(row) == {"static-app", "static-all", "dyn-mean", "dyn-flat", "full-mean"}
        assert all(0.0 <= v <= 1.0 for v in row.values())
    assert res["r2_dyn_mean_on_static_app"] <= 1.0 + 1e-9
    out = capsys.readouterr().out
    assert all(f"| {n} |" in out for n in names)
