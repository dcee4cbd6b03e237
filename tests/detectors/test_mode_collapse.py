import numpy as np
import pandas as pd

from gandiag import schema as S
from gandiag.detectors.mode_collapse import ModeCollapse


def _detect(run):
    return ModeCollapse().detect(run)


def _with_modes(m, covered_after, from_step):
    covered = m[S.DIV_MODES_COVERED].copy()
    covered[covered.index >= from_step] = covered_after
    m[S.DIV_MODES_COVERED] = covered
    return _consistent_recall(m)


def _consistent_recall(m):
    # A G on k of 8 modes reaches about k/8 of the real data: keep recall in step
    # with the mode count, as in a real collapse.
    recall = m[S.DIV_RECALL].copy()
    covered = m[S.DIV_MODES_COVERED]
    low = covered < 8
    recall[low] = np.minimum(recall[low], covered[low] / 8)
    m[S.DIV_RECALL] = recall
    return m


def test_a_falling_mode_count_fires_at_the_first_low_evaluation(make_run, healthy):
    m = healthy(0)
    covered = m[S.DIV_MODES_COVERED]
    covered[(covered.index >= 500) & (covered.index < 600)] = 6
    covered[covered.index >= 600] = 2
    (f,) = _detect(make_run(_consistent_recall(m)))
    assert f.kind == "mode_collapse" and f.severity == "warning"
    assert (f.start_step, f.end_step) == (600, 950)
    assert f.evidence["modes_covered_before"] == 8 and f.evidence["modes_covered_in_window"] == 2
    assert f.evidence["modes_total"] == 8


def test_half_the_modes_is_the_threshold(make_run, healthy):
    assert _detect(make_run(_with_modes(healthy(0), 5, 500))) == []
    assert len(_detect(make_run(_with_modes(healthy(0), 4, 500)))) == 1


def test_one_bad_evaluation_is_not_collapse(make_run, healthy):
    m = healthy(0)
    m[S.DIV_MODES_COVERED][600] = 1
    assert _detect(make_run(m)) == []


def test_few_modes_during_warm_up_is_not_collapse(make_run, healthy):
    m = healthy(0)
    covered = m[S.DIV_MODES_COVERED]
    covered[covered.index < 200] = 1
    assert _detect(make_run(m)) == []


def test_a_run_that_never_covers_the_modes_fires_after_warm_up(make_run, healthy):
    m = _with_modes(healthy(0), 1, 0)
    (f,) = _detect(make_run(m))
    assert f.start_step == 200 and "down from" not in f.message


def test_without_mode_metrics_falling_recall_fires(make_run, healthy):
    m = healthy(0)
    del m[S.DIV_MODES_COVERED], m[S.DIV_MODES_TOTAL]
    assert _detect(make_run(m)) == []
    recall = m[S.DIV_RECALL]
    recall[recall.index >= 650] = 0.1
    (f,) = _detect(make_run(m))
    assert f.start_step == 650 and f.evidence[f"{S.DIV_RECALL}_in_window"] == 0.1


def test_without_mode_metrics_low_diversity_ratio_fires(make_run):
    evals = np.arange(0, 1000, 50)
    ratio = pd.Series(np.where(evals >= 400, 0.2, 0.9), index=evals)
    (f,) = _detect(make_run({S.LOSS_G: np.zeros(1000), S.DIV_RATIO: ratio}))
    assert f.start_step == 400 and f.end_step == 950


def test_a_collapse_the_run_recovered_from_is_not_reported(make_run, healthy):
    # Few modes for a stretch after warm-up, then all of them: the run's state is healthy.
    m = healthy(0)
    covered = m[S.DIV_MODES_COVERED]
    covered[(covered.index >= 300) & (covered.index < 600)] = 2
    assert _detect(make_run(_consistent_recall(m))) == []
    covered[covered.index >= 800] = 2  # ...and collapsed again at the end: reported from 800
    (f,) = _detect(make_run(_consistent_recall(m)))
    assert (f.start_step, f.end_step) == (800, 950)



def test_few_precise_modes_with_high_recall_is_not_collapse(make_run):
    # G spread round the whole ring but not yet sharp: few modes hit within 3 sigma,
    # yet its samples reach almost all the real data.
    idx = np.arange(0, 2000, 100)

    def run(recall):
        return make_run({S.DIV_MODES_COVERED: pd.Series(2.0, index=idx), S.DIV_MODES_TOTAL: pd.Series(8.0, index=idx),
                         S.DIV_RECALL: pd.Series(recall, index=idx), S.LOSS_G: np.zeros(2000)})

    assert _detect(run(0.95)) == []
    assert [f.kind for f in _detect(run(0.25))] == ["mode_collapse"]
