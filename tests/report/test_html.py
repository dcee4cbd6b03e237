import html
import re
from html.parser import HTMLParser

import pytest

from gandiag.report import write_report
from gandiag.report.html import KIND_DESCRIPTIONS
from gandiag.rundir import write_findings


class _Tables(HTMLParser):
    """Collects the text of each cell of the table with id="comparison", row by row."""

    def __init__(self):
        super().__init__()
        self.rows, self._in, self._row, self._cell = [], False, None, None
        self.tags = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "table" and a.get("id") == "comparison":
            self._in = True
        if self._in and tag == "tr" and "run-row" in (a.get("class") or ""):
            self._row = []
        if self._row is not None and tag == "td":
            self._cell = ""

    def handle_endtag(self, tag):
        if tag == "table":
            self._in = False
        if tag == "td" and self._cell is not None:
            self._row.append(self._cell)
            self._cell = None
        if tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def _parse(text):
    p = _Tables()
    p.feed(text)
    return p


def test_single_run_report_is_self_contained(make_run, finding, tmp_path):
    run = make_run("solo")
    fs = [finding("mode_collapse", 50, 150, "critical", message="Only 3 of 8 modes <covered> & shrinking")]
    out = write_report([run], [fs], tmp_path / "r.html")
    text = out.read_text()
    assert out.exists() and text.startswith("<!DOCTYPE html>")
    assert "data:image/png;base64," in text
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.I)
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text.lower()
    assert html.escape("Only 3 of 8 modes <covered> & shrinking") in text
    assert "<covered>" not in text
    assert "mode_collapse" in text and "50\u2013150" not in text and "50-150" in text
    assert 'id="comparison"' not in text
    # evidence is shown as a table
    assert "<th>metric</th>" in text


def test_every_kind_and_message_is_mentioned(make_run, finding, tmp_path):
    runs = [make_run("a"), make_run("b", seed=1)]
    fs = [[finding(k, 10 * i, 10 * i + 5) for i, k in enumerate(KIND_DESCRIPTIONS)], []]
    text = write_report(runs, fs, tmp_path / "r.html").read_text()
    for f in fs[0]:
        assert f["kind"] in text and html.escape(f["message"]) in text
    for desc in KIND_DESCRIPTIONS.values():
        assert html.escape(desc) in text


def test_comparison_table_one_row_per_run(make_run, finding, tmp_path):
    runs = [make_run("ns-0", loss="ns", seed=0), make_run("wgan-0", loss="wgan", seed=0, final_modes=8),
            make_run("ns-1", loss="ns", seed=1, samples="images")]
    fs = {"ns-0": [finding("mode_collapse", 100, 199)], "wgan-0": [], "ns-1": [finding("oscillation", 5, 9)]}
    text = write_report(runs, fs, tmp_path / "r.html").read_text()
    rows = _parse(text).rows
    # grouped by variant: the ns runs first, in seed order
    assert [r[0] for r in rows] == ["ns-0", "ns-1", "wgan-0"]
    by_name = {r[0]: r for r in rows}
    assert by_name["ns-0"][5].strip() == "mode_collapse"
    assert by_name["wgan-0"][5].strip() == "none"
    assert by_name["ns-0"][6] == "3/8 @199" and by_name["wgan-0"][6] == "8/8 @199"  # the last step is evaluated
    # 200 steps: the first 10% are steps 0..19, grad_norm_g = 1 + s, logit_grad_g = 0.5 + s
    assert by_name["ns-0"][7] == "10.5" and by_name["ns-0"][8] == "10"
    assert "Across runs" in text


def test_comparison_shows_dash_when_not_recorded(make_run, tmp_path):
    from gandiag import schema

    runs = [make_run("a", omit=(schema.DIV_MODES_COVERED, schema.GRAD_NORM_G)), make_run("b")]
    rows = {r[0]: r for r in _parse(write_report(runs, [[], []], tmp_path / "r.html").read_text()).rows}
    assert rows["a"][6] == "\u2014" and rows["a"][7] == "\u2014"
    assert rows["b"][6] == "3/8 @199"


def test_no_findings_is_said(make_run, tmp_path):
    text = write_report([make_run()], [[]], tmp_path / "r.html").read_text()
    assert "No findings." in text


def test_findings_read_from_run_dir_when_not_given(make_run, finding, tmp_path):
    analysed, fresh = make_run("analysed"), make_run("fresh")
    write_findings(analysed.path, [finding("divergence", 3, 4, message="boom")])
    text = write_report([analysed, fresh], out=tmp_path / "r.html").read_text()
    assert "boom" in text and "Not analysed" in text


def test_user_text_is_escaped(make_run, finding, tmp_path):
    run = make_run(loss="<script>alert(1)</script>")
    fs = [finding("<script>x</script>", 1, 2, message="<script>alert(2)</script>", note="<script>")]
    text = write_report([run, make_run("other")], [fs, []], tmp_path / "r.html",
                        title="<script>alert(3)</script>").read_text()
    assert "<script" not in text.lower()
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in text


def test_default_out_under_reports_created_on_write(make_run, tmp_path, monkeypatch):
    run = make_run()
    monkeypatch.chdir(tmp_path)
    assert not (tmp_path / "reports").exists()
    out = write_report([run], [[]])
    assert out.parent == tmp_path / "reports" or out.resolve().parent == (tmp_path / "reports").resolve()
    assert re.fullmatch(r"report-\d{8}-\d{6}(-\d+)?\.html", out.name)
    assert write_report([run], [[]]) != out  # a second report in the same second keeps the first


def test_descriptions_override_the_defaults(make_run, tmp_path):
    text = write_report([make_run()], [[]], tmp_path / "r.html",
                        descriptions={"mode_collapse": "From the registry."}).read_text()
    assert "From the registry." in text
    assert html.escape(KIND_DESCRIPTIONS["mode_collapse"]) not in text
    assert html.escape(KIND_DESCRIPTIONS["oscillation"]) in text


def test_bad_findings_are_rejected(make_run, finding, tmp_path):
    runs = [make_run("a"), make_run("b")]
    with pytest.raises(ValueError, match=r"Expected one findings list per run \(2\) but got 1"):
        write_report(runs, [[]], tmp_path / "r.html")
    with pytest.raises(ValueError, match="unknown keys"):
        write_report(runs, {"c": []}, tmp_path / "r.html")
    bad = finding("oscillation", 1, 2)
    del bad["message"]
    with pytest.raises(ValueError, match="missing"):
        write_report(runs, [[bad], []], tmp_path / "r.html")
    with pytest.raises(ValueError, match="at least one run"):
        write_report([], [], tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()


def test_samples_first_middle_last(make_run, tmp_path):
    run = make_run(snapshots=5, steps=101)
    text = write_report([run], [[]], tmp_path / "r.html").read_text()
    assert 'alt="samples of run at steps 0, 50, 100"' in text
    no_samples = make_run("bare", samples=None)
    assert "No sample snapshots" in write_report([no_samples], [[]], tmp_path / "s.html").read_text()


def test_overlays_are_drawn_per_data_set(make_run, tmp_path):
    runs = [make_run("a", data="ring8"), make_run("b", data="ring8", seed=1), make_run("c", data="digits", samples="images")]
    text = write_report(runs, [[], [], []], tmp_path / "r.html").read_text()
    start = text.index("<h2>Across runs</h2>")
    section = text[start:text.index("</section>", start)]
    assert section.count("<h3>") == 2 and "<h3>ring8</h3>" in section and "<h3>digits</h3>" in section
    single = write_report(runs[:2], [[], []], tmp_path / "s.html").read_text()
    assert "<h3>ring8</h3>" not in single  # one data set: no per-data headings


def test_critic_scores_stay_off_the_d_fake_probability_panel(make_run, tmp_path, monkeypatch):
    from gandiag.report import plots

    drawn = {}
    real_overlay = plots.plot_overlay

    def spy(runs, metric, ax=None):
        drawn[metric] = [r.name for r in runs]
        return real_overlay(runs, metric, ax=ax)

    monkeypatch.setattr(plots, "plot_overlay", spy)
    runs = [make_run("ns", loss="ns"), make_run("wg", loss="wgan", d_output="critic")]
    text = write_report(runs, [[], []], tmp_path / "r.html").read_text()
    assert drawn["d_fake"] == ["ns"] and drawn["loss_g"] == ["ns", "wg"]
    assert "critic runs (raw scores) are left out of its panel: wg" in text
    assert "logit grad is 1 by construction" in text
    # Critics alone: no probability panel at all, and nothing to explain.
    drawn.clear()
    text = write_report(runs[1:], [[]], tmp_path / "c.html").read_text()
    assert "d_fake" not in drawn and "left out of its panel" not in text
    assert "1 by construction" not in write_report(runs[:1], [[]], tmp_path / "n.html").read_text()
    assert "Not recorded in any run: d_fake" not in text  # it is recorded, as scores


def test_a_run_with_nothing_recorded_says_so(tmp_path):
    from gandiag.rundir import RunWriter, load_run

    RunWriter(tmp_path / "empty", {"config": {}, "d_output": "logits"}).close("interrupted")
    text = write_report([load_run(tmp_path / "empty")], [[]], tmp_path / "r.html").read_text()
    assert "Nothing recorded yet" in text and "No findings." not in text
