import json

import numpy as np
import pytest

from gandiag import schema as S
from gandiag.detectors import DETECTORS, analyze
from gandiag.detectors.mode_collapse import ModeCollapseConfig
from gandiag.detectors.oscillation import OscillationConfig
from gandiag.rundir import RunWriter


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_healthy_run_has_no_findings(make_run, healthy, seed):
    assert analyze(make_run(healthy(seed))) == []


@pytest.mark.parametrize("kind", sorted(DETECTORS))
def test_half_finished_runs_do_not_crash_or_fire(make_run, healthy, kind):
    full = healthy(0)
    few = {S.LOSS_G: full[S.LOSS_G][:6], S.D_ACC: full[S.D_ACC][:6], S.GRAD_NORM_G: full[S.GRAD_NORM_G][:6]}
    for run in (
        make_run({}, {"status": "running"}),
        make_run(few, {"status": "running"}),
        make_run({S.LOSS_G: [0.7]}, {"status": "running", "d_output": "probs"}),
        make_run({S.DIV_MODES_COVERED: [np.nan, 3.0]}, {"d_output": "critic"}),
    ):
        assert DETECTORS[kind]().detect(run) == []


def test_a_run_cut_short_early_has_no_findings(make_run, healthy):
    full = healthy(0)
    cut = {name: (v[v.index < 150] if hasattr(v, "index") else v[:150]) for name, v in full.items()}
    assert analyze(make_run(cut, {"status": "running"})) == []


def test_findings_are_sorted_and_json_ready(make_run, healthy):
    m = healthy(0)
    m[S.G_HAS_GRAD] = np.zeros(1000)
    m[S.LOSS_D][700:] = np.nan
    m[S.NONFINITE][700:] = 1  # as the Monitor flags a NaN loss
    findings = analyze(make_run(m))
    assert [f.kind for f in findings] == ["generator_gets_no_gradient", "divergence"]
    assert [f.start_step for f in findings] == sorted(f.start_step for f in findings)
    json.dumps([f.to_dict() for f in findings])


def test_kinds_select_detectors(make_run, healthy):
    m = healthy(0)
    m[S.G_HAS_GRAD] = np.zeros(1000)
    m[S.LOSS_D][700:] = np.nan
    m[S.NONFINITE][700:] = 1  # as the Monitor flags a NaN loss
    assert [f.kind for f in analyze(make_run(m), kinds=["divergence"])] == ["divergence"]


def test_configs_change_thresholds(make_run, healthy):
    m = healthy(0)
    evals = m[S.DIV_MODES_COVERED].index
    m[S.DIV_MODES_COVERED][evals >= 500] = 5
    m[S.DIV_RECALL][evals >= 500] = 5 / 8  # a G on 5 of 8 modes reaches about 5/8 of the data
    assert analyze(make_run(m), kinds=["mode_collapse"]) == []
    strict = {"mode_collapse": ModeCollapseConfig(max_mode_fraction=0.7)}
    assert [f.kind for f in analyze(make_run(m), configs=strict)] == ["mode_collapse"]


def test_unknown_kinds_are_an_error_listing_valid_ones(make_run):
    valid = r"Expected detector kinds among \[.*'divergence'.*\] but got \['mode_colapse'\]"
    with pytest.raises(ValueError, match=valid):
        analyze(make_run({}), kinds=["mode_colapse"])
    with pytest.raises(ValueError, match=r"but got \['nope'\]"):
        analyze(make_run({}), configs={"nope": ModeCollapseConfig()})
    with pytest.raises(TypeError, match="Expected kinds to be a list of detector kinds but got the str 'divergence'"):
        analyze(make_run({}), kinds="divergence")
    wrong = "Expected OscillationConfig for detector 'oscillation' but got ModeCollapseConfig"
    with pytest.raises(TypeError, match=wrong):
        analyze(make_run({}), configs={"oscillation": ModeCollapseConfig()})


def test_accepts_a_run_directory(tmp_path, healthy):
    m = healthy(0)
    writer = RunWriter(tmp_path / "run", {"d_output": "logits", "config": {"loss": "minimax"}})
    rows = [{S.STEP: s, S.LOSS_G: float(m[S.LOSS_G][s]), S.LOSS_D: float(m[S.LOSS_D][s])} for s in range(300)]
    rows[200][S.LOSS_G] = float("nan")
    writer.append(rows)
    writer.close("diverged", diverged_at=200)
    findings = analyze(tmp_path / "run")
    assert [(f.kind, f.start_step) for f in findings] == [("divergence", 200)]
    assert analyze(str(tmp_path / "run"), kinds=["oscillation"], configs={"oscillation": OscillationConfig()}) == []
