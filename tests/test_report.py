"""`python -m evolve report`: plots whose data is the archive's, a summary, and an HTML page tested in Chromium."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from chromium import Browser
from PIL import Image
from run_helpers import evolve

from evolve import figures
from evolve.lineage import lineage_view
from population import Population
from population.archive import curve as archive_curve
from population.export import best_history
from population.lineage import unified_diff

# The session's smoke run (tests/conftest.py) is built by whichever test asks first: ~1.5 min, more on a
# loaded machine, so these tests get more than the default 300 s.
pytestmark = pytest.mark.timeout(900)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report(smoke_run, tmp_path_factory):
    """The report of the smoke run, with the crossover's lineage (the noise-gated best may be the seed)."""
    out = tmp_path_factory.mktemp("report")
    proc = evolve("report", "--run-dir", str(smoke_run.run_dir), "--out", str(out), "--lineage", smoke_run.merge.id)
    assert proc.returncode == 0, proc.stderr
    return out, proc.stdout


def _expected_progress(frame, seed_id, config):
    """What the progress plot must show: every child's point, and the best as Population.best() had it just
    before each child (best_history equals the live best: tests/test_population_archive.py)."""
    frame = frame.sort_values("eval_id").reset_index(drop=True)
    steps = best_history(frame, seed_id, config)
    seed = frame[(frame.genome_id == seed_id) & (frame.status == "ok")].val_bpb.mean()  # nan if it never ran ok
    running, points, improvements, failed, number = [], [], [], [], 0
    for i, row in enumerate(frame.itertuples()):
        if row.kind != "child" or row.status == "interrupted":
            continue
        number += 1
        running.append(steps[i - 1].val_bpb if i else math.nan)
        if row.status == "ok":
            points.append((number, row.val_bpb))
            if row.genome_id in {s.best_id for s in steps}:
                improvements.append((number, row.val_bpb))
        elif row.status != "pruned":  # a pruned child is drawn apart, as stopped rather than failed
            failed.append(number)
    return seed, points, improvements, failed, [*running, steps[-1].val_bpb]


def _artist(items, gid):
    found = [a for a in items if a.get_gid() == gid]
    return found[0] if found else None


def test_report_plots_are_pngs_of_exactly_the_archives_data(smoke_run, report, tmp_path):
    out, _ = report
    for name in ("progress.png", "lineage.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE), name
        with Image.open(out / name) as image:
            image.verify()
    with Population.read(smoke_run.run_dir) as pop:
        frame, seed_id, config = pop.archive(), pop.seed().id, pop.config
        best = pop.fitness((pop.best() or pop.seed()).id).mean
    fig = figures.progress_figure(figures.progress(frame, seed_id, config))
    ax = fig.axes[0]
    seed, points, improvements, failed, running = _expected_progress(frame, seed_id, config)
    assert math.isclose(running[-1], best)  # the plot ends where the summary's best is
    assert 4 in failed  # the child that raises is trained last (on a loaded machine others may fail too)
    shown = [
        tuple(p) for gid in ("rest", "improvements") if (a := _artist(ax.collections, gid)) for p in a.get_offsets()
    ]
    assert sorted(shown) == sorted(points)
    imp = _artist(ax.collections, "improvements")
    assert [tuple(p) for p in (imp.get_offsets() if imp else [])] == improvements
    assert list(_artist(ax.collections, "failed").get_offsets()[:, 0]) == failed
    best_line = _artist(ax.lines, "running-best").get_xydata()
    assert list(best_line[:, 0]) == list(range(len(running)))
    assert np.allclose(best_line[:, 1], running, equal_nan=True)
    seed_line = _artist(ax.lines, "seed")
    assert math.isclose(seed_line.get_ydata()[0], seed) if math.isfinite(seed) else seed_line is None
    # The PNG the command wrote is this figure, pixel for pixel.
    figures.save(fig, tmp_path / "progress.png")
    assert np.array_equal(
        np.asarray(Image.open(tmp_path / "progress.png")), np.asarray(Image.open(out / "progress.png"))
    )


def test_report_lineage_image_is_the_chosen_genomes_lineage(smoke_run, report, tmp_path):
    out, _ = report
    with Population.read(smoke_run.run_dir) as pop:
        fig = figures.lineage_figure(lineage_view(pop, smoke_run.merge.id))
    assert {t.get_gid() for t in fig.axes[0].texts} == {smoke_run.merge.id, *smoke_run.merge.parents, smoke_run.seed.id}
    figures.save(fig, tmp_path / "lineage.png")
    assert _same_pixels(tmp_path / "lineage.png", out / "lineage.png")


def test_report_summary_counts_children_failures_best_and_spend(smoke_run, report):
    out, stdout = report
    summary = (out / "summary.txt").read_text()
    assert summary.strip() in stdout
    rows = {line[:16].strip(): line[16:].strip() for line in summary.splitlines()}
    with Population.read(smoke_run.run_dir) as pop:
        children = pop.archive().query("kind == 'child'")
    failed, pruned = int((~children.status.isin(("ok", "pruned"))).sum()), int((children.status == "pruned").sum())
    assert rows["children"] == "4" and rows["failed children"] == f"{failed} ({failed / 4:.0%})"
    assert rows["pruned children"].startswith(f"{pruned} ({pruned / 4:.0%})")
    assert rows["crash"] == "1 (25%)  e.g. RuntimeError: deliberate crash before training"
    with Population.read(smoke_run.run_dir) as pop:
        frame, best, sigma, scores = pop.archive(), (pop.best() or pop.seed()), pop.noise_sigma(), pop.summary()
    assert rows["best val_bpb"].startswith(f"{scores.best_val_bpb:.4f}  ({best.id[:7]}")
    gap = scores.best_val_bpb - scores.seed_val_bpb
    assert rows["best vs seed"] == f"{gap:+.4f}" + (f" ({gap / sigma:+.1f}σ)" if sigma else "")
    confirmed = frame[(frame.genome_id == best.id) & (frame.kind == "confirm") & (frame.status == "ok")]
    shown = f"{confirmed.test_bpb.mean():.4f}" if len(confirmed) else "- (not confirmed)"
    assert rows["best test_bpb"] == shown  # test_bpb only for a confirmed best
    assert rows["CPU child-hours"] == f"{frame.total_seconds.sum() / 3600:.3f}" and rows["GPU-hours"] == "0.000"
    assert rows["LLM cost"] == "$0.00"


def test_report_html_is_self_contained(report):
    out, _ = report
    page = (out / "report.html").read_text()
    assert re.findall(r"""(?:src|href)\s*=\s*['"](?!data:)""", page) == []
    assert "<script src" not in page and "@import" not in page and "url(" not in page


@pytest.mark.slow
def test_report_html_in_chromium_shows_the_tree_and_a_clicked_nodes_diff(smoke_run, report, tmp_path):
    out, _ = report
    merge, seed = smoke_run.merge, smoke_run.seed
    parents = {g.id: g for g in smoke_run.children[:2]}
    browser = Browser(tmp_path)
    try:
        browser.navigate((out / "report.html").as_uri())
        nodes = browser.evaluate("Array.from(document.querySelectorAll('#tree .node')).map(n => n.dataset.id)")
        assert nodes == [merge.id, merge.parents[0], seed.id, merge.parents[1], seed.id]
        assert browser.evaluate("document.querySelectorAll('img[src^=\"data:image/png;base64,\"]').length") == 3
        first = merge.parents[0]
        _click(browser, "#tree .node", 1)
        assert browser.evaluate("document.getElementById('diff-title').textContent").startswith(first[:7])
        shown = browser.evaluate("document.getElementById('diff').textContent")
        assert shown == unified_diff(seed, parents[first]) + "\n"
        assert browser.evaluate("document.querySelectorAll('#diff .add').length") >= 1
        assert browser.evaluate("document.querySelector('#tree .node.selected').dataset.id") == first
        _click(browser, "#tree .node", 0)
        shown = browser.evaluate("document.getElementById('diff').textContent")
        for parent in merge.parents:
            assert unified_diff(parents[parent], merge).strip() in shown
        assert browser.errors == []
    finally:
        browser.close()


@pytest.mark.slow
def test_report_html_genome_table_sorts_by_a_clicked_column(report, tmp_path):
    out, _ = report
    browser = Browser(tmp_path)
    try:
        browser.navigate((out / "report.html").as_uri())
        column = browser.evaluate(
            "Array.from(document.querySelectorAll('#genomes th')).findIndex(h => h.textContent === 'val_bpb')"
        )
        values = f"Array.from(document.querySelectorAll('#genomes tbody tr')).map(r => r.cells[{column}].dataset.value)"
        _click(browser, "#genomes th", column)
        ascending = [float(v) for v in browser.evaluate(values)]
        scored = [v for v in ascending if not math.isnan(v)]
        assert scored == sorted(scored) and all(math.isnan(v) for v in ascending[len(scored) :])
        _click(browser, "#genomes th", column)
        descending = [float(v) for v in browser.evaluate(values)]
        assert [v for v in descending if not math.isnan(v)] == sorted(scored, reverse=True)
        assert browser.errors == []
    finally:
        browser.close()


def _same_pixels(a, b) -> bool:
    with Image.open(a) as first, Image.open(b) as second:
        return np.array_equal(np.asarray(first), np.asarray(second))


def _click(browser: Browser, selector: str, index: int) -> None:
    """Scroll the element into view and click near its left end with the mouse, as a person would (a long
    label may run out of its scrolled box, so its centre need not be visible)."""
    x, y = browser.evaluate(
        f"(() => {{ const el = document.querySelectorAll('{selector}')[{index}];"
        " el.scrollIntoView({block: 'center'}); const r = el.getBoundingClientRect();"
        " return [r.x + Math.min(r.width / 2, 20), r.y + r.height / 2]; })()"
    )
    assert browser.evaluate(f"document.elementFromPoint({x}, {y}).closest('{selector}') !== null"), selector
    browser.click(x, y)


def test_llm_tokens_without_a_price_are_shown_as_unknown_spend_not_free():
    import pandas as pd

    from evolve.report import cost_text

    def rows(*usage):
        columns = ["llm_input_tokens", "llm_cost_usd", "llm_model"]
        return pd.DataFrame(list(usage), columns=columns)

    assert cost_text(rows((0, 0.0, ""), (900, 0.25, "claude-sonnet-5-5"))) == "$0.25"
    unpriced = "unknown for 1 evaluations (no price for claude-mythos-5-2; see --price)"
    assert cost_text(rows((800, 0.0, "claude-mythos-5-2"), (0, 0.0, ""))) == unpriced
    assert cost_text(rows((800, 0.0, "claude-mythos-5-2"), (900, 0.25, "claude-sonnet-5-5"))) == "$0.25 + " + unpriced


def test_every_real_training_in_the_archive_keeps_its_loss_curve(smoke_run):
    with Population.read(smoke_run.run_dir) as pop:
        rows = pop.archive().to_dict("records")
    trained = [r for r in rows if r["status"] == "ok"]
    assert trained and all(len(archive_curve(r)) >= 10 for r in trained)
    for row in trained:
        losses = [loss for _, loss in archive_curve(row)]
        assert losses[-1] < losses[0]  # the seed genome's loss falls over its budget


def test_report_plots_the_childs_loss_curve_against_its_parents(smoke_run, report):
    out, _ = report
    with Image.open(out / "curves.png") as image:
        image.verify()
    assert "Loss curve of " + smoke_run.merge.id[:7] in (out / "report.html").read_text()
    with Population.read(smoke_run.run_dir) as pop:
        frame = pop.archive()
    fig = figures.curves_figure(figures.curves(frame, smoke_run.merge.id, smoke_run.merge.parents))
    lines = {line.get_gid(): line.get_xydata() for line in fig.axes[0].lines}
    assert set(lines) == {smoke_run.merge.id, *smoke_run.merge.parents}
    for gid, xy in lines.items():
        row = frame[(frame.genome_id == gid) & (frame.kind == "child")].iloc[0]
        assert np.allclose(xy, archive_curve(row))
