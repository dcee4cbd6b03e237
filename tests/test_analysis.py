import pytest

from gandiag import analysis
from gandiag.analysis import analyze_runs
from gandiag.rundir import RunDirError, RunWriter


def _run(path, steps=3):
    w = RunWriter(path, {"config": {}, "d_output": "logits"})
    w.append([{"step": s, "loss_g": 1.0, "nonfinite": 0} for s in range(steps)])
    w.close("completed")


def test_an_unreadable_run_inside_a_folder_is_skipped_but_not_one_named(tmp_path):
    _run(tmp_path / "sweep" / "good")
    bad = tmp_path / "sweep" / "bad"
    bad.mkdir()
    (bad / "meta.json").write_text("{not json")
    result = analyze_runs([tmp_path / "sweep"], write=False)
    assert [r.path.name for r in result.runs] == ["good"]
    assert [p.name for p, _ in result.skipped] == ["bad"] and "valid JSON" in result.skipped[0][1]
    with pytest.raises(RunDirError, match="valid JSON"):
        analyze_runs([tmp_path / "sweep", bad], write=False)  # named: the user asked for it


def test_a_folder_of_nothing_but_unreadable_runs_is_an_error(tmp_path):
    bad = tmp_path / "sweep" / "bad"
    bad.mkdir(parents=True)
    (bad / "meta.json").write_text("[]")
    with pytest.raises(RunDirError, match="none of the 1 found could be read"):
        analyze_runs([tmp_path / "sweep"], write=False)


def test_findings_that_cannot_be_saved_are_returned_not_raised(tmp_path, monkeypatch):
    _run(tmp_path / "a")
    _run(tmp_path / "b")

    def read_only(path, findings):
        if path.name == "a":
            raise OSError(30, "Read-only file system", str(path / "findings.json"))
        (path / "findings.json").write_text("[]")

    monkeypatch.setattr(analysis, "write_findings", read_only)
    result = analyze_runs([tmp_path / "a", tmp_path / "b"], write=False)
    failed = result.write_findings()
    assert [(p.name, why) for p, why in failed] == [("a", "OSError: Read-only file system")]
    assert (tmp_path / "b" / "findings.json").exists()
