import pytest

from gandiag.report import text_summary
from gandiag.rundir import RunWriter, load_run


def test_one_line_per_run_with_kinds_and_ranges(make_run, finding):
    runs = [make_run("alpha", loss="ns", seed=3, samples=None), make_run("beta", loss="wgan", seed=1, samples=None,
                                                                        status="diverged")]
    fs = [[finding("mode_collapse", 100, 180), finding("oscillation", 20, 60), finding("mode_collapse", 190, 190)],
          []]
    text = text_summary(runs, fs)
    lines = text.splitlines()
    alpha = next(l for l in lines if l.startswith("alpha"))
    beta = next(l for l in lines if l.startswith("beta"))
    assert "loss=ns" in alpha and "seed=3" in alpha and "completed" in alpha and "3 findings" in alpha
    assert "oscillation 20-60" in alpha and "mode_collapse 100-180, 190" in alpha
    assert "loss=wgan" in beta and "diverged" in beta and "no findings" in beta
    assert "2 runs, 3 findings" in text
    assert "  mode_collapse: 2 in 1 run" in lines and "  oscillation: 1 in 1 run" in lines
    assert "\x1b" not in text


def test_totals_count_runs_per_kind(make_run, finding):
    runs = [make_run(n, samples=None) for n in ("a", "b", "c")]
    fs = {"a": [finding("divergence", 5, 9)], "b": [finding("divergence", 1, 2), finding("divergence", 3, 4)]}
    text = text_summary(runs, fs)
    assert "  divergence: 3 in 2 runs" in text.splitlines()
    assert "3 runs, 3 findings" in text
    assert next(l for l in text.splitlines() if l.startswith("c ")).endswith("no findings")


def test_unanalysed_run(make_run):
    assert "not analysed" in text_summary([make_run(samples=None)])


def test_rejects_misaligned_findings(make_run):
    with pytest.raises(ValueError, match="one findings list per run"):
        text_summary([make_run(samples=None)], [[], []])


def test_runs_of_own_loops_name_their_source_not_question_marks(tmp_path):
    for name, meta in (("mine", {"config": {}, "d_output": "probs"}),
                       ("lit", {"config": {"source": "lightning"}, "d_output": "critic"})):
        w = RunWriter(tmp_path / name, meta)
        w.append([{"step": 0, "loss_g": 1.0}])
        w.close("completed")
    lines = text_summary([load_run(tmp_path / "mine"), load_run(tmp_path / "lit")]).splitlines()
    assert lines[0].split()[:4] == ["mine", "own", "loop", "d_output=probs"]
    assert lines[1].split()[:3] == ["lit", "lightning", "d_output=critic"]
    assert "?" not in lines[0] + lines[1]


def test_a_run_with_nothing_recorded_says_so(tmp_path):
    RunWriter(tmp_path / "empty", {"config": {}, "d_output": "logits"}).close("interrupted")
    assert "nothing recorded yet" in text_summary([load_run(tmp_path / "empty")], [[]])
