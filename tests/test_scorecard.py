"""The scorecard (every lens on a model), the MSD score and the fast judge's architecture."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from skd.files.checkpoint import load_checkpoint, save_checkpoint
from skd.cli.main import main
from skd.data.base import Factor
from skd.evaluation.two_factor import TwoFactorSpec, evaluate_judges, evaluate_two_factor
from skd.evaluation.judge import Judge, JudgeConfig, judge_setup, load_judge, train_judge
from skd.evaluation.scorecard import ScorecardSpec, Target, build_scorecard, msd_chance, msd_score, scorecard_rows

from conftest import JUDGE_TINY, tiny_world

ROOT = Path(__file__).resolve().parents[1]
SIZES = st.lists(st.integers(2, 12), min_size=1, max_size=6)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("scorecard")
    return (root, *tiny_world(root))


# ----------------------------------------------------------------------------- MSD score
def test_msd_score_of_a_perfect_swap_is_one_and_of_no_swap_is_the_chance_floor() -> None:
    names = ["skin", "pants", "top", "hair"]
    assert msd_score(dict.fromkeys(names, 1.0), dict.fromkeys(names, 1.0)) == 1.0
    floor = msd_score(dict.fromkeys(names, 1 / 6), dict.fromkeys(names, 1.0))
    assert floor == pytest.approx(msd_chance([6, 6, 6, 6])) == pytest.approx((1 / 6 + 1) / 2)
    assert 0.58 < floor < 0.59  # the floor the MSD benchmark states for Sprites


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=6), st.floats(0, 0.5))
def test_msd_score_lies_in_unit_interval_and_grows_with_on_target(pairs, bump) -> None:
    on = {str(i): a for i, (a, _) in enumerate(pairs)}
    off = {str(i): b for i, (_, b) in enumerate(pairs)}
    s = msd_score(on, off)
    assert 0.0 <= s <= 1.0
    better = {k: min(1.0, v + bump) for k, v in on.items()}
    assert msd_score(better, off) >= s - 1e-12


@given(SIZES)
def test_msd_chance_is_between_half_and_one(sizes) -> None:
    assert 0.5 < msd_chance(sizes) < 1.0


def test_msd_score_rejects_mismatched_factors() -> None:
    with pytest.raises(ValueError, match="same factors"):
        msd_score({"a": 1.0}, {"b": 1.0})


def test_target_met_and_shortfall() -> None:
    t = Target(at_least=0.9)
    assert t.met(0.9) and not t.met(0.89) and t.shortfall(0.95) == 0.0
    assert t.shortfall(0.45) == pytest.approx(0.5)
    u = Target(at_most=0.05)
    assert u.met(-0.1) and not u.met(0.06) and u.text(percent=True) == "≤ 5 %"


# ----------------------------------------------------------------------------- fast judge
def test_fast_judge_static_heads_ignore_frame_order_and_dynamic_heads_do_not() -> None:
    torch.manual_seed(0)
    facs = (Factor("look", 3, "static"), Factor("move", 4, "dynamic"))
    judge = Judge(JudgeConfig(width=4, feature=8, head_hidden=8), (3, 32, 32), facs).eval()
    x = torch.rand(5, 6, 3, 32, 32)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    with torch.no_grad():
        a, b = judge(x), judge(x[:, perm])
    torch.testing.assert_close(a["look"], b["look"], rtol=1e-5, atol=1e-6)  # time average: order-free
    assert (a["move"] - b["move"]).abs().max() > 1e-5  # temporal convolutions see the order


def test_a_judge_saved_before_arch_existed_loads_as_reference(world, tmp_path) -> None:
    _, _, _, tr, te = world
    setup = judge_setup([*JUDGE_TINY, "judge.arch=reference", "judge.lstm_hidden=8"],
                        {"data": {"name": "shapes", "n_train": 48, "n_test": 16}})
    jr = train_judge(setup, tr, te, tmp_path / "ref", progress=False)
    ck = load_checkpoint(tmp_path / "ref" / "judge.pt", kind="judge")
    config = dict(ck["config"])
    config["judge"] = {k: v for k, v in config["judge"].items() if k != "arch"}  # the old file layout
    save_checkpoint(tmp_path / "old" / "judge.pt", kind="judge", config=config, state={"model": ck["model"]})
    judge, _ = load_judge(tmp_path / "old")
    assert judge.cfg.arch == "reference"
    x = te.batch(torch.arange(4))
    with torch.no_grad():
        assert all(torch.equal(judge(x)[k], jr.judge.eval()(x)[k]) for k in judge.heads)


# ----------------------------------------------------------------------------- shared draws
def test_judges_read_the_same_frames(world) -> None:
    _, run, jr, _, te = world
    spec = TwoFactorSpec(repeats=2, batch_size=8)
    one, two = evaluate_judges(run.model, run.config.loss, [jr.judge, jr.judge], te, spec, progress=False)
    assert one.table == two.table and one.unchanged == two.unchanged and one.sanity == two.sanity
    alone = evaluate_two_factor(run.model, run.config, jr.judge, te, repeats=2, batch_size=8, progress=False)
    assert alone.table == one.table


def test_scorecard_rows_cover_every_lens_and_agree_for_the_same_judge_twice(world) -> None:
    _, run, jr, tr, te = world
    card = build_scorecard(run.model, run.config.loss, [jr.judge, jr.judge], tr, te,
                           ScorecardSpec(repeats=2, batch_size=8, fit_batch=40), progress=False)
    rows = scorecard_rows(card)
    keys = {r.key for r in rows}
    assert {"reconstruction.shape", "reference.A.sample.motion.acc", "refined.B.swap.color.acc",
            "reference.A.swap.size.replaced_above_chance", "multifactor.label-free.msd"} <= keys
    assert any(k.startswith("multifactor.supervised.") for k in keys)
    assert all(len(r.values) == 2 and r.judge_spread == 0.0 for r in rows)
    for r in rows:
        if r.percent and "replaced" not in r.key:
            assert 0.0 <= r.value <= 1.0, r.key
    msd = next(r for r in rows if r.key == "multifactor.label-free.msd")
    assert 0.0 <= msd.value <= 1.0 and msd.target is not None


def test_scorecard_cli_writes_markdown_json_and_pictures(world, tmp_path, capsys) -> None:
    root, _, _, _, _ = world
    out = tmp_path / "card"
    assert main(["scorecard", "-q", "--run", str(root / "run"), "--judge", str(root / "judge"), "--repeats", "1",
                 "--batch-size", "8", "--fit-batch", "40", "--out", str(out)]) == 0
    md = (out / "scorecard.md").read_text()
    assert "Protocol A sample" in md and "MSD intervention score" in md and "targeted rows met" in md
    rep = json.loads((out / "scorecard.json").read_text())
    assert rep["targets"] > 0 and 0 <= rep["targets_met"] <= rep["targets"] and len(rep["judge_sha256"]) == 1
    assert (out / "scorecard.png").stat().st_size > 0 and (out / "single_factor_swaps.png").stat().st_size > 0
    # the README/model-card table is made from the JSON by a script
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "scorecard_table.py"), str(out / "scorecard.json")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("|")]
    assert lines[0].startswith("| lens | shape | color | size | background | motion |")
    assert len({ln.count("|") for ln in lines}) == 1  # every row has every column
    assert f"{rep['targets_met']} of {rep['targets']} targeted rows met" in proc.stdout
    # two scorecards side by side (docs/ABLATIONS.md): one column each, the met counts in the last line
    script = str(ROOT / "benchmarks" / "scorecard_compare.py")
    card = str(out / "scorecard.json")
    proc = subprocess.run([sys.executable, script, card, card, "--name", "a, 1", "--name", "b"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "| row | target | a, 1 | b |" and len({ln.count("|") for ln in lines}) == 1
    assert len(lines) == 2 + rep["targets"] + 1
    assert lines[-1].endswith(f"**{rep['targets_met']} / {rep['targets']}** | **{rep['targets_met']} / {rep['targets']}** |")
    bad = subprocess.run([sys.executable, script, card, "--name", "a", "--name", "b"], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "1 scorecards but 2 names" in bad.stderr
    capsys.readouterr()
    assert main(["scorecard", "--run", str(root / "run"), "--judge", str(root / "judge"), "--repeats", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "repeats=0" in err[0]


def test_a_run_loaded_in_bf16_decodes_like_fp32_within_bf16_rounding(world) -> None:
    from skd.pipelines import ops
    from skd.training.loop import load_run

    root, _, _, _, te = world
    fp32, _ = load_run(root / "run")
    bf16, _ = load_run(root / "run", precision="bf16")
    assert bf16.frame_autocast == torch.bfloat16 and fp32.frame_autocast is None
    x = te.batch(torch.arange(6))
    a, b = ops.decode(fp32, ops.encode(fp32, x)), ops.decode(bf16, ops.encode(bf16, x))
    assert b.dtype == torch.float32
    err = float((a - b).abs().max())
    assert 0.0 < err < 0.05  # bf16 keeps 8 bits of mantissa: close, and not silently fp32
