"""The zoo end to end on the fast part of the quick tier (about 30 s on a CPU).

The whole quick tier (with the digit GAN, ~1-3 minutes) runs in CI as
``gandiag zoo --tier quick -o runs/zoo-quick --jobs 2``; this test covers the
pipeline and the floors on the scenarios that train in seconds.
"""
import json

import pytest

from gandiag.zoo.report import REPORT_FILE, RESULTS_FILE, summarize, write_zoo_report
from gandiag.zoo.runner import run_zoo

FAST = ["dirac-sim-h0.2", "dirac-alt-h0.2", "dirac-r1-h0.2", "ring8-minimax-frozen-g-s0", "ring8-weak-d-s0"]


@pytest.fixture(scope="module")
def summary(tmp_path_factory):
    out = tmp_path_factory.mktemp("zoo")
    zoo = run_zoo("quick", out, names=FAST, progress=lambda msg: None)
    s = summarize(zoo)
    write_zoo_report(s, out)
    return out, s


def test_truth_is_measured_as_built(summary):
    _, s = summary
    truth = {r["scenario"]: r["truth"] for r in s["scenarios"]}
    assert truth["dirac-sim-h0.2"]["kinds"] == ["divergence"]
    assert truth["dirac-alt-h0.2"]["kinds"] == ["oscillation"]
    assert truth["dirac-r1-h0.2"]["status"] == "healthy"
    assert "vanishing_generator_gradient" in truth["ring8-minimax-frozen-g-s0"]["kinds"]
    assert "discriminator_too_weak" in truth["ring8-weak-d-s0"]["kinds"]


def test_floors_on_the_fast_scenarios(summary):
    _, s = summary
    kinds = s["scores"]["calibration"]["kinds"]
    for kind in ("vanishing_generator_gradient", "oscillation", "discriminator_too_weak", "divergence"):
        assert kinds[kind]["recall"] == 1.0 and kinds[kind]["precision"] == 1.0, kind
    clean, healthy = s["scores"]["calibration"]["healthy_clean"]
    assert healthy >= 1 and clean == healthy


def test_report_files_hold_the_numbers(summary):
    out, s = summary
    data = json.loads((out / RESULTS_FILE).read_text())
    assert data["scores"]["calibration"]["kinds"]["oscillation"]["tp"] == 1
    md = (out / REPORT_FILE).read_text()
    assert "| oscillation **(target)** |" in md and "dirac-alt-h0.2" in md
    assert "negative when the detector places the start before" in md
    # Calibration runs only: "all" would repeat the calibration table.
    assert "## calibration (" in md and "## heldout (" not in md and "## all (" not in md


def test_the_combined_table_appears_when_both_splits_have_runs(summary):
    from gandiag.zoo.report import markdown

    _, s = summary
    both = json.loads(json.dumps(s))
    both["scores"]["heldout"] = both["scores"]["calibration"]
    md = markdown(both)
    assert md.index("## calibration (") < md.index("## heldout (") < md.index("## all (")


def test_unknown_scenario_names_are_refused(tmp_path):
    with pytest.raises(ValueError, match="Expected scenario names"):
        run_zoo("quick", tmp_path, names=["no-such-scenario"])


def test_shortfalls_name_what_is_below_the_floor(summary):
    from gandiag.zoo.report import shortfalls

    _, s = summary
    assert shortfalls(s, 0.95) == []  # the fast scenarios meet the targets
    broken = json.loads(json.dumps(s))
    broken["scores"]["all"]["kinds"]["oscillation"]["recall"] = 0.5
    broken["scores"]["all"]["healthy_clean"] = [1, 2]
    assert shortfalls(broken, 0.95) == ["oscillation recall 0.50", "healthy runs without findings 1/2"]
