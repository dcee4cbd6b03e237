import json

import numpy as np
import pytest
from click.testing import CliRunner

from gandiag.cli import main


@pytest.fixture
def cli():
    return CliRunner()


def _one_line_error(result, phrase):
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gandiag: error: ") and phrase in lines[0], result.output


@pytest.mark.parametrize("args,phrase", [
    (["--loss", "foo"], "'minimax'"),
    (["--data", "nope"], "'ring8'"),
    (["--steps", "0"], "Expected --steps to be an integer >= 1 but got 0"),
    (["--seeds", "a,b"], "Expected --seeds"),
])
def test_bad_run_input_is_one_line_and_writes_nothing(cli, tmp_path, args, phrase):
    res = cli.invoke(main, ["run", "--out", str(tmp_path / "runs"), *args])
    _one_line_error(res, phrase)
    assert not (tmp_path / "runs").exists()


def test_wrong_shape_data_file_is_rejected(cli, tmp_path):
    np.save(tmp_path / "bad.npy", np.zeros(10))
    res = cli.invoke(main, ["run", "--data", str(tmp_path / "bad.npy"), "--out", str(tmp_path / "runs")])
    _one_line_error(res, "Expected")
    assert not (tmp_path / "runs").exists()
    np.save(tmp_path / "tiny.npy", np.random.default_rng(0).random((3, 2)))
    res = cli.invoke(main, ["run", "--data", str(tmp_path / "tiny.npy"), "--out", str(tmp_path / "runs")])
    _one_line_error(res, "Expected more than k=5 real samples")  # the error alone: no progress bar before it
    assert not (tmp_path / "runs").exists()


def test_report_rejects_missing_and_malformed_run_dirs(cli, tmp_path):
    _one_line_error(cli.invoke(main, ["report", str(tmp_path / "missing")]), "does not exist")
    (tmp_path / "empty").mkdir()
    _one_line_error(cli.invoke(main, ["report", str(tmp_path / "empty")]), "holds neither")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "meta.json").write_text("{not json")
    _one_line_error(cli.invoke(main, ["report", str(bad)]), "valid JSON")
    _one_line_error(cli.invoke(main, ["report", str(bad), "--fail-on", "nonsense"]), "finding kinds")


def test_run_then_report_end_to_end(cli, tmp_path):
    res = cli.invoke(main, ["run", "--loss", "minimax,nonsaturating", "--data", "ring8", "--steps", "30",
                            "--out", str(tmp_path / "runs"), "--quiet"])
    assert res.exit_code == 0, res.output
    run_dirs = [l for l in res.stdout.splitlines() if l.strip()]
    assert len(run_dirs) == 2 and all((tmp_path / "runs").glob("*/ring8-minimax-s0"))
    sweep = str((tmp_path / "runs").iterdir().__next__())
    out = tmp_path / "r.html"
    rep = cli.invoke(main, ["report", sweep, "--out", str(out), "--json"])
    assert rep.exit_code == 0, rep.output
    data = json.loads(rep.stdout)
    assert set(data) == set(run_dirs)
    html = out.read_text()
    assert "ring8-minimax-s0" in html and "data:image/png;base64," in html
    # --fail-on: exit 1 exactly when a named kind is present
    kinds = {f["kind"] for fs in data.values() for f in fs}
    absent = next(k for k in ("output_mismatch", "generator_gets_no_gradient") if k not in kinds)
    assert cli.invoke(main, ["report", sweep, "--out", str(out), "--fail-on", absent]).exit_code == 0
    if kinds:
        assert cli.invoke(main, ["report", sweep, "--out", str(out), "--fail-on", sorted(kinds)[0]]).exit_code == 1


def test_report_finds_sweeps_inside_runs_once_and_writes_nothing_on_a_bad_sample(cli, tmp_path):
    runs = tmp_path / "runs"
    res = cli.invoke(main, ["run", "--loss", "minimax,minimax", "--seeds", "0,0", "--steps", "5", "--out", str(runs), "--quiet"])
    assert res.exit_code == 0, res.output
    assert len(res.stdout.split()) == 1  # duplicates are trained once
    sweep = next(runs.iterdir())
    run_dir = next(sweep.iterdir())
    # runs/ holds a sweep folder: its run is found, and naming it twice reports it once
    out = cli.invoke(main, ["report", str(runs), str(sweep), "--out", str(tmp_path / "r.html"), "--json"])
    assert out.exit_code == 0, out.output
    assert list(json.loads(out.stdout)) == [str(run_dir.resolve())]
    (run_dir / "findings.json").unlink()
    snap = next((run_dir / "samples").iterdir())
    snap.write_bytes(b"not an array")
    bad = cli.invoke(main, ["report", str(run_dir), "--out", str(tmp_path / "r2.html")])
    _one_line_error(bad, "")
    assert not (run_dir / "findings.json").exists() and not (tmp_path / "r2.html").exists()


def test_report_skips_an_unreadable_run_in_a_folder_with_a_warning(cli, tmp_path):
    from gandiag.rundir import RunWriter

    w = RunWriter(tmp_path / "sweep" / "good", {"config": {}, "d_output": "logits"})
    w.append([{"step": 0, "loss_g": 1.0}])
    w.close("completed")
    (tmp_path / "sweep" / "bad").mkdir()
    (tmp_path / "sweep" / "bad" / "meta.json").write_text("{not json")
    res = cli.invoke(main, ["report", str(tmp_path / "sweep"), "--out", str(tmp_path / "r.html")])
    assert res.exit_code == 0, res.output
    assert "gandiag: warning: skipped" in res.stderr and "bad" in res.stderr
    assert "good" in res.stdout and (tmp_path / "r.html").exists()


@pytest.mark.skipif(not __import__("os").path.isdir("/sys/kernel"), reason="needs Linux sysfs")
def test_unwritable_out_folders_are_one_line_errors(cli, tmp_path):
    _one_line_error(cli.invoke(main, ["run", "--steps", "1", "--out", "/sys/gandiag-test", "--quiet"]),
                    "but got PermissionError: Operation not permitted (/sys/gandiag-test)")
    w = __import__("gandiag.rundir", fromlist=["RunWriter"]).RunWriter(tmp_path / "r", {"config": {}})
    w.append([{"step": 0, "loss_g": 1.0}])
    w.close("completed")
    _one_line_error(cli.invoke(main, ["report", str(tmp_path / "r"), "--out", "/sys/gandiag-test/r.html"]),
                    "Expected a writable place for the report (--out) but got")


def _tiny_run(path):
    from gandiag.rundir import RunWriter

    w = RunWriter(path, {"config": {}, "d_output": "logits"})
    w.append([{"step": 0, "loss_g": 1.0}])
    w.close("completed")


def test_report_json_writes_no_html_unless_out_is_given(cli, tmp_path, monkeypatch):
    _tiny_run(tmp_path / "r")
    monkeypatch.chdir(tmp_path)
    res = cli.invoke(main, ["report", "r", "--json"])
    assert res.exit_code == 0, res.output
    assert list(json.loads(res.stdout).values()) == [[]]
    assert not (tmp_path / "reports").exists() and "report:" not in res.stderr
    assert (tmp_path / "r" / "findings.json").exists()
    res = cli.invoke(main, ["report", "r", "--json", "--out", "x.html"])
    assert res.exit_code == 0 and (tmp_path / "x.html").exists()


def test_tilde_paths_expand_to_the_home_directory(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    _tiny_run(tmp_path / "r")
    res = cli.invoke(main, ["report", "~/r", "--out", "~/rep.html"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "rep.html").exists() and not (tmp_path / "~").exists()
    res = cli.invoke(main, ["run", "--steps", "2", "--out", "~/runs", "--quiet"])
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "runs").glob("*/ring8-nonsaturating-s0/meta.json"))) == 1
