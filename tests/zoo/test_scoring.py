import math

import pytest

from gandiag.zoo.scoring import Outcome, clean_healthy_share, confusion, detection_delays, score

MC, VG, DS = "mode_collapse", "vanishing_generator_gradient", "discriminator_too_strong"


def _o(name, truth=(), found=None, dont_care=(), onset=None):
    return Outcome(name, "calibration", frozenset(truth), frozenset(dont_care), onset or {}, found or {})


OUTCOMES = [
    _o("tp1", {MC}, {MC: 500}, onset={MC: 400}),
    _o("tp2", {MC}, {MC: 300, DS: 10}, onset={MC: 350}),
    _o("fn", {MC}, {}),
    _o("fp", (), {MC: 100}),
    _o("tn", (), {}),
    _o("vg", {VG}, {VG: 120, DS: 100}, dont_care={DS}, onset={VG: 100}),
]


def test_confusion_counts_each_cell_and_names_the_errors():
    c = confusion(OUTCOMES, MC)
    assert (c.tp, c.fp, c.fn, c.tn) == (2, 1, 1, 2)
    assert c.precision == pytest.approx(2 / 3) and c.recall == pytest.approx(2 / 3)
    assert c.fp_runs == ("fp",) and c.fn_runs == ("fn",)


def test_dont_care_kind_is_left_out_of_its_matrix():
    c = confusion(OUTCOMES, DS)
    # "vg" flagged DS but does not care; "tp2" flagged DS and is a false positive.
    assert (c.tp, c.fp, c.fn, c.tn) == (0, 1, 0, 4)
    assert c.fp_runs == ("tp2",)
    assert math.isnan(c.recall) and c.precision == 0.0


def test_delays_are_finding_start_minus_onset_for_detected_runs_only():
    assert detection_delays(OUTCOMES, MC) == [100, -50]
    assert detection_delays(OUTCOMES, VG) == [20]


def test_healthy_share_counts_runs_without_any_finding():
    assert clean_healthy_share(OUTCOMES) == (1, 2)


def test_score_bundles_every_kind():
    s = score(OUTCOMES, [MC, VG])
    assert s["runs"] == 6 and s["healthy_clean"] == [1, 2]
    assert s["kinds"][VG]["tp"] == 1 and s["kinds"][VG]["precision"] == 1.0
    assert s["kinds"][MC]["median_delay"] == 100


def test_outcome_rejects_a_kind_both_true_and_dont_care():
    with pytest.raises(ValueError, match="disjoint"):
        _o("bad", {MC}, dont_care={MC})
    with pytest.raises(ValueError, match="onsets only for true kinds"):
        _o("bad", (), onset={MC: 3})
