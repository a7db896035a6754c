"""report.html: one self-contained page (inline CSS, JS and base64 images; nothing fetched).

It holds the summary, the progress plot, the best genome's lineage tree (click a node: its diff from
its parents), the lineage image, that genome's loss curve against its parents', and a table of every
evaluated genome (click a header to sort; click a row of a genome whose diff is stored to see it). Every
value from the run is HTML-escaped; the diffs travel as JSON in a script tag, with `<` escaped so no text
can close it.
"""

from __future__ import annotations

import base64
import html
import json
import math
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from evolve.lineage import LineageView, label, tree
from evolve.runview import GenomeStats, fmt_bpb
from population import Population
from population.lineage import unified_diff

TOP_DIFFS = 30  # besides the lineage, the best this many genomes carry their diffs into the page
TREE_LABEL = 120  # characters of a tree node's label shown (all of it on hover)
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222; }
h1, h2 { font-weight: 600; } img { max-width: 100%; border: 1px solid #ddd; }
table { border-collapse: collapse; } td, th { padding: 2px 10px; border-bottom: 1px solid #eee; text-align: left; }
th { cursor: pointer; background: #f4f4f4; user-select: none; } th[data-order=asc]::after { content: " ▲"; }
th[data-order=desc]::after { content: " ▼"; } #genomes tr[data-id]:hover { background: #f0f6ff; cursor: pointer; }
#tree { font: 13px/1.6 ui-monospace, monospace; white-space: pre; overflow-x: auto; }
.node { cursor: pointer; padding: 1px 4px; border-radius: 3px; } .node:hover { background: #e8f0fe; }
.node.selected { background: #cfe0fc; outline: 1px solid #6b9bf0; }
#diff { font: 12px/1.4 ui-monospace, monospace; background: #fafafa;
  border: 1px solid #ddd; padding: 8px; overflow-x: auto; max-height: 70vh; }
.add { color: #116611; background: #eaffea; } .del { color: #aa1111; background: #ffecec; }
.hunk { color: #6a4bb0; } #diff span { display: block; }
"""
SCRIPT = """
const diffs = JSON.parse(document.getElementById('diffs').textContent);
function showDiff(id) {
  const entry = diffs[id], title = document.getElementById('diff-title'), pre = document.getElementById('diff');
  document.querySelectorAll('.node.selected').forEach(n => n.classList.remove('selected'));
  document.querySelectorAll('.node[data-id="' + id + '"]').forEach(n => n.classList.add('selected'));
  pre.replaceChildren();
  if (!entry) { title.textContent = 'no diff stored in this page for ' + id.slice(0, 7); return; }
  title.textContent = entry.title;
  for (const line of entry.text.split('\\n')) {
    const span = document.createElement('span');
    span.className = line.startsWith('@@') ? 'hunk' : line.startsWith('+') ? 'add' : line.startsWith('-') ? 'del' : '';
    span.textContent = line + '\\n';
    pre.appendChild(span);
  }
}
document.querySelectorAll('.node, #genomes tr[data-id]').forEach(
  el => el.addEventListener('click', () => showDiff(el.dataset.id)));
function sortBy(th) {
  const table = th.closest('table'), body = table.tBodies[0], col = th.cellIndex;
  const order = th.dataset.order === 'asc' ? 'desc' : 'asc';
  table.querySelectorAll('th').forEach(h => delete h.dataset.order);
  th.dataset.order = order;
  const key = row => {
    const cell = row.cells[col];
    return cell.dataset.value !== undefined ? parseFloat(cell.dataset.value) : cell.textContent;
  };
  const rows = Array.from(body.rows).sort((a, b) => {
    const x = key(a), y = key(b);
    if (typeof x === 'number') {
      if (isNaN(x) || isNaN(y)) return isNaN(x) - isNaN(y);  // unscored rows stay last
      return order === 'asc' ? x - y : y - x;
    }
    return order === 'asc' ? x.localeCompare(y) : y.localeCompare(x);
  });
  body.append(...rows);
}
document.querySelectorAll('#genomes th').forEach(th => th.addEventListener('click', () => sortBy(th)));
"""
COLUMNS = ("id", "operator", "generation", "parents", "evaluations", "ok", "val_bpb", "std", "test_bpb", "status")


def render(
    pop: Population,
    frame: pd.DataFrame,
    stats: dict[str, GenomeStats],
    summary,
    view: LineageView,
    images: dict[str, Path],
) -> str:
    title = f"evolve report: {pop.run_dir.name}"
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    body = [
        f"<h1>{_e(title)}</h1><p>{_e(str(pop.run_dir.resolve()))} · generated {stamp}</p>",
        "<h2>Summary</h2><table class='summary'>"
        + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in summary.rows)
        + "</table>",
        f"<h2>Progress</h2>{_image(images['progress'], 'progress: val_bpb of every child')}",
        f"<h2>Lineage of {'the best genome' if view.genome_id == summary.best_id else 'genome'}"
        f" {view.genome_id[:7]}</h2>{_lineage(view)}",
        _image(images["lineage"], f"lineage graph of {view.genome_id[:7]}"),
        f"<h2>Loss curve of {view.genome_id[:7]} against its parents'</h2>",
        _image(images["curves"], f"training loss of {view.genome_id[:7]} and its parents"),
        f"<h2>Genomes</h2>{_genomes(frame, stats)}",
        f"<script type='application/json' id='diffs'>{_json(_diffs(pop, view, stats))}</script>",
        f"<script>{SCRIPT}</script>",
    ]
    head = f"<meta charset='utf-8'><title>{_e(title)}</title><style>{STYLE}</style>"
    return f"<!doctype html>\n<html lang='en'><head>{head}</head><body>{''.join(body)}</body></html>\n"


def _lineage(view: LineageView) -> str:
    rows = []
    for line in tree(view):
        text = label(view, line)
        shown = text if len(text) <= TREE_LABEL else text[: TREE_LABEL - 1] + "…"
        node = f"<span class='node' data-id='{line.genome_id}' title='{_e(text)}'>{_e(shown)}</span>"
        rows.append(f"<div>{_e(line.prefix)}{node}</div>")
    panel = "<h3 id='diff-title'>Click a node to see its diff from its parents</h3><pre id='diff'></pre>"
    return f"<div id='tree'>{''.join(rows)}</div><div id='diff-panel'>{panel}</div>"


def _genomes(frame: pd.DataFrame, stats: dict[str, GenomeStats]) -> str:
    first = frame.drop_duplicates("genome_id").set_index("genome_id")
    ordered = sorted(stats, key=lambda g: (not math.isfinite(stats[g].val_bpb), stats[g].val_bpb))
    header = "".join(f"<th>{c}</th>" for c in (*COLUMNS, "description"))
    rows = []
    for gid in ordered:
        s, row = stats[gid], first.loc[gid]
        parents = " ".join(p[:7] for p in str(row.parents).split(",") if p)
        cells = [
            f"<td title='{gid}'>{gid[:7]}</td>",
            f"<td>{_e(row.operator)}</td>",
            _num(int(row.generation), str(int(row.generation))),
            f"<td>{parents}</td>",
            _num(s.evaluations, str(s.evaluations)),
            _num(s.count, str(s.count)),
            _num(s.val_bpb, fmt_bpb(s.val_bpb)),
            _num(s.std, fmt_bpb(s.std)),
            _num(s.test_bpb, fmt_bpb(s.test_bpb)),
            f"<td title='{_e(s.reason)}'>{_e(s.status)}</td>",
            f"<td>{_e(row.description)}</td>",
        ]
        rows.append(f"<tr data-id='{gid}'>{''.join(cells)}</tr>")
    return f"<table id='genomes'><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _diffs(pop: Population, view: LineageView, stats: dict[str, GenomeStats]) -> dict[str, dict]:
    """Each lineage node's diff from its parents, and those of the best-scoring genomes."""
    entries = {gid: _diff_entry(node.genome, node.diffs) for gid, node in view.nodes.items()}
    ranked = sorted((g for g in stats if math.isfinite(stats[g].val_bpb)), key=lambda g: stats[g].val_bpb)
    for gid in ranked[:TOP_DIFFS]:
        if gid not in entries:
            genome = pop.genome(gid)
            entries[gid] = _diff_entry(genome, tuple(unified_diff(pop.genome(p), genome) for p in genome.parents))
    return entries


def _diff_entry(genome, diffs: tuple[str, ...]) -> dict:
    head = f"{genome.short_id} {genome.operator}: {genome.description}"
    if not genome.parents:
        return {"title": f"{head} (the seed: no parent; its train.py)", "text": genome.source}
    parents = ", ".join(p[:7] for p in genome.parents)
    return {"title": f"{head} (diff from {parents})", "text": "\n".join(d or "(no change)" for d in diffs)}


def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f"<p><img alt='{_e(alt)}' src='data:image/png;base64,{data}'></p>"


def _num(value: float, text: str) -> str:
    shown = value if math.isfinite(value) else "NaN"
    return f"<td data-value='{shown}'>{_e(text)}</td>"


def _json(value) -> str:
    return json.dumps(value).replace("<", "\\u003c")


def _e(text) -> str:
    return html.escape(str(text), quote=True)
