import json

import numpy as np

from gandiag.rundir import METRICS_FILE, RunWriter, jsonable, load_run


def test_append_writes_what_the_generic_conversion_writes(tmp_path):
    # The fast path (finite floats, encoded as is) and the fallback must agree.
    rows = [
        {"step": 0, "loss_d": 0.5, "loss_g": 1e300, "zero": -0.0},
        {"step": 1, "loss_d": float("nan"), "grad": float("inf"), "neg": -float("inf")},
        {"step": 2, "a": np.float32(2.5), "b": np.float64(0.1), "n": np.int64(3)},
        {"step": 3, "nested": [1.0, float("nan")], "t": (1, 2)},
        {1: 2.0, True: 1.0, None: 3.0},
    ]
    w = RunWriter(tmp_path / "run", {})
    w.append(rows)
    w.append([])
    w.close("completed")
    text = (tmp_path / "run" / METRICS_FILE).read_text()
    assert text == "".join(json.dumps(jsonable(dict(r))) + "\n" for r in rows)
    # the last row has no step, which the reader rejects: read back the others
    (tmp_path / "run" / METRICS_FILE).write_text("".join(text.splitlines(keepends=True)[:4]))
    metrics = load_run(tmp_path / "run").metrics
    assert np.isnan(metrics.loc[1, "loss_d"]) and metrics.loc[1, "grad"] == float("inf")
    assert metrics.loc[2, "a"] == 2.5


def test_malformed_metrics_lines_are_a_clear_error(tmp_path):
    import pytest

    from gandiag.rundir import RunDirError, RunWriter, load_run

    w = RunWriter(tmp_path / "r", {"d_output": "logits"})
    w.append([{"step": 0, "loss_g": 1.0}, {"step": 1, "loss_g": 2.0}])
    w.close("completed")
    metrics = tmp_path / "r" / "metrics.jsonl"
    good = metrics.read_text()
    for bad, phrase in (('{"loss_g": 1.0}', "integer 'step'"), ("[1, 2, 3]", "integer 'step'"),
                        ('{"step": "abc"}', "integer 'step'"), ("garbage", "line 2 is not JSON")):
        lines = good.splitlines()
        metrics.write_text("\n".join([lines[0], bad, lines[1]]) + "\n")
        with pytest.raises(RunDirError, match=phrase):
            load_run(tmp_path / "r")
    metrics.write_text(good + '{"step": 2, "lo')  # torn last line: tolerated
    assert list(load_run(tmp_path / "r").metrics.index) == [0, 1]
