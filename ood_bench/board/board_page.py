"""A suite's leaderboard as one self-contained page (``index.html``): nothing from the network, opens from disk.

On top, the RL positive control (its rule, whether it passed, a row per exposure level it names), then the
generated verdicts, or the line saying why there are none. Then the headline table, each cell coloured by the sign of its change and
whether its q-value is under 0.05 (with a mark beside the colour, so the colour is never the only cue), and the
expansion table; both filter by the evaluated axis, exposure, algorithm and training split (``<select>``s),
and sort by any column. A click on a cell (or Enter on it: every cell is a button) opens its drill-down: the
cell's statistics, each seed's values (the ``per_seed`` rows of ``leaderboard.json``), the compute, and a
scatter of every problem's exact Q_base against Q_post with the run's tilt, and the texts its first seed's run
and that run's base sampled on a few problems (``examples.jsonl`` beside each record), marked right or wrong.

The page carries its data as JSON in three ``<script>`` blocks: the cells and seeds (``board-data``) and the
sample texts (``board-examples``), compared number by number by ``--check`` like every table, and the
per-problem masses (``board-problems``, one byte a problem), compared exactly.
"""

from __future__ import annotations

import base64
import html
import json
import re

import pandas as pd

from ..evaluation.support import Thresholds
from ..storage.numeric_text import same_up_to_rounding
from . import verdicts
from .board_stats import Q_LEVEL

PROBLEMS_BLOCK = re.compile(r'(<script type="application/json" id="board-problems">)(.*?)(</script>)', re.S)
IMAGE = re.compile(r'src="data:image/png;base64,[A-Za-z0-9+/=]*"')

# the cell columns the page reads (a subset of the headline's, which leaderboard.json has in full)
CELL_COLUMNS = [
    "row", "algorithm", "trained_on", "exposure", "exposure_label", "split", "seeds", "problems",
    "d_trace", "d_trace_lo", "d_trace_hi", "d_trace_p", "q", "mde", "trace_base", "trace_post",
    "d_answer", "d_answer_lo", "d_answer_hi", "d_mass", "d_mass_lo", "d_mass_hi", "outside", "expanded",
    "expanded_threshold", "expansion", "expansion_lo", "expansion_hi", "rollouts", "train_tokens", "grad_steps",
    "wall_s", "runs_checked", "runs_trained", "interval",
]  # fmt: skip


def records(df: pd.DataFrame) -> list[dict]:
    """A frame as JSON records at six significant digits (as ``leaderboard.json`` writes them)."""
    return json.loads(df.to_json(orient="records", double_precision=6)) if len(df) else []


def columns(df: pd.DataFrame) -> dict:
    """A frame as ``{"columns": [...], "rows": [[...], ...]}`` at six significant digits: the page's data
    without each key repeated on every row (the script rebuilds the records)."""
    rows = records(df)
    return {"columns": list(df.columns), "rows": [[r[c] for c in df.columns] for r in rows]}


def _script_json(value) -> str:
    """JSON safe inside a <script> element (no "</" to end it early)."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True).replace("</", "<\\/")


def _signed(v: float) -> str:
    return "n/a" if v != v else f"{v:+.3f}".replace("-", "−")


def _is_floor(r) -> bool:
    return r["trace_base"] == 0 and r["trace_post"] == 0


def _significant(r) -> bool:
    return not _is_floor(r) and r["d_trace_lo"] == r["d_trace_lo"] and r["q"] < Q_LEVEL


def _gain_cell(r, i: int) -> str:
    """A headline cell: the change (marked and coloured where q < 0.05) over its 95% interval, as a button that
    opens the drill-down."""
    where = f"{r['row']} trained on {r['trained_on']}, exposure {r['exposure']}, on {r['split']}"
    if _is_floor(r):
        kind, main, sub, value = "floor", "0 → 0", "no trace right", "0"
    elif r["d_trace_lo"] != r["d_trace_lo"]:
        kind, main, sub, value = "nointerval", _signed(r["d_trace"]), "no interval", f"{r['d_trace']:.6g}"
    else:
        sign = "pos" if r["d_trace"] > 0 else "neg" if r["d_trace"] < 0 else "zero"
        kind = f"{sign}-sig" if _significant(r) else sign
        main, sub, value = (
            _signed(r["d_trace"]),
            f"[{_signed(r['d_trace_lo'])}, {_signed(r['d_trace_hi'])}]",
            (f"{r['d_trace']:.6g}"),
        )
    if _significant(r):
        mark = "▲ " if r["d_trace"] > 0 else "▼ "
        main = f'<strong class="sig">{mark}{main}</strong>'
    label = html.escape(f"{where}: {re.sub('<[^>]+>', '', main)} {sub}; details")
    return (
        f'<td class="cell {kind}" data-split="{html.escape(r["split"])}" data-v="{value}">'
        f'<button type="button" class="open" data-cell="{i}" aria-label="{label}">'
        f"{main}<small>{html.escape(sub)}</small></button></td>"
    )


def _expansion_cell(r, i: int) -> str:
    if not r["outside"]:
        main, sub, value, kind = "–", "none outside", "", "none"
    elif r["runs_checked"] > 0 and r["runs_trained"] == 0:
        main, sub, value, kind = (
            "did not train",
            f"{r['runs_trained']} of {r['runs_checked']} runs; fixed thresholds: {r['expanded_threshold']}",
            "",
            "untrained",
        )
    elif r["expanded"] != r["expanded"]:
        main, sub, value, kind = f"n/a of {r['outside']}", "no tilt fitted", "", "none"
    else:
        main = f"{int(r['expanded'])} of {r['outside']}"
        sub = (
            f"rate {r['expansion']:.3f} [{r['expansion_lo']:.3f}, {r['expansion_hi']:.3f}]; "
            f"fixed thresholds: {r['expanded_threshold']}"
        )
        value, kind = f"{r['expansion']:.6g}", "expanded" if r["expanded"] > 0 else "zero"
    label = html.escape(f"{r['row']} trained on {r['trained_on']}, exposure {r['exposure']}, on {r['split']}: {main}")
    return (
        f'<td class="cell {kind}" data-split="{html.escape(r["split"])}" data-v="{value}">'
        f'<button type="button" class="open" data-cell="{i}" aria-label="{html.escape(label)}; details">'
        f"{html.escape(main)}<small>{html.escape(sub)}</small></button></td>"
    )


def _table(ordered: pd.DataFrame, splits: list[str], cell, compute: bool, table_id: str) -> str:
    head = [
        "algorithm",
        "trained on",
        "exposure",
        *splits,
        *(["trained", "rollouts", "train tokens", "wall"] if compute else []),
    ]
    # a split's column carries its name, for the axis filter; every header is a button, for sorting by keyboard
    split_of = {s: f' data-split="{html.escape(s)}"' for s in splits}
    ths = "".join(
        f'<th scope="col"{split_of.get(s, "")} aria-sort="none"><button type="button">{html.escape(s)}</button></th>'
        for s in head
    )
    body = []
    for (row, trained, exposure), g in ordered.groupby(["row", "trained_on", "exposure"], sort=False):
        first = g.iloc[0]
        name = first["algorithm"] if row == "null" else row
        tds = [f"<td>{html.escape(name)}</td>", f"<td>{html.escape(trained)}</td>",
               f"<td>{html.escape(first['exposure_label'])}</td>"]  # fmt: skip
        for split in splits:
            hit = g[g["split"] == split]
            tds.append(cell(hit.iloc[0], int(hit.index[0])) if len(hit) else f'<td data-split="{split}"></td>')
        if compute:
            tds += [
                f"<td>{first['runs_trained']} of {first['runs_checked']}</td>"
                if first["runs_checked"]
                else "<td>-</td>",
                f'<td data-v="{first["rollouts"]:.6g}">{first["rollouts"]:,.0f}</td>',
                f'<td data-v="{first["train_tokens"]:.6g}">{first["train_tokens"]:,.0f}</td>',
                f'<td data-v="{first["wall_s"]:.6g}">{first["wall_s"] / 60:.1f} min</td>',
            ]
        body.append(
            f'<tr data-row="{html.escape(row)}" data-trained="{html.escape(trained)}" '
            f'data-exposure="{html.escape(exposure)}">{"".join(tds)}</tr>'
        )
    return (
        f'<div class="wrap"><table class="sortable board" id="{table_id}"><thead><tr>{ths}</tr></thead>'
        f"<tbody>\n" + "\n".join(body) + "\n</tbody></table></div>"
    )


def _select(name: str, label: str, options: list[tuple[str, str]]) -> str:
    opts = "".join(f'<option value="{html.escape(v)}">{html.escape(t)}</option>' for v, t in options)
    return f'<label>{html.escape(label)} <select id="f-{name}"><option value="">all</option>{opts}</select></label>'


def _filters(head: pd.DataFrame, splits: list[str]) -> str:
    exposures = head[["exposure", "exposure_label", "exposure_frac"]].copy()
    exposures["order"] = exposures.groupby("exposure")["exposure_frac"].transform("max").fillna(0)
    exposures = exposures.drop_duplicates("exposure").sort_values(["order", "exposure"])
    rows = sorted(set(head["row"]) - {"null"}) + (["null"] if (head["row"] == "null").any() else [])
    trained = [t for t in ["id", *sorted(set(head["trained_on"]) - {"id", "-"})] if t in set(head["trained_on"])]
    return (
        '<div class="filters" role="group" aria-label="Filter both tables">'
        + _select("split", "Evaluated on", [(s, s) for s in splits])
        + _select("exposure", "Exposure", list(zip(exposures["exposure"], exposures["exposure_label"])))
        + _select("row", "Algorithm", [(r, "null (base re-sampled)" if r == "null" else r) for r in rows])
        + _select(
            "trained",
            "Trained on",
            [(t, t) for t in trained] + ([("-", "- (null rows)")] if rows[-1:] == ["null"] else []),
        )
        + '<button type="button" id="f-reset">Show all</button>'
        + '<span id="shown" role="status" aria-live="polite"></span></div>'
    )


def _superseded(readme: str) -> str:
    """The README's "superseded records" line, where it has one, as the page's first paragraph."""
    line = next((p for p in readme.split("\n\n") if p.startswith("**Superseded records.**")), "")
    if not line:
        return ""
    text = html.escape(line.replace("**", "").replace("`", ""))
    return f'<p class="superseded" role="note"><strong>{text.split(".", 1)[0]}.</strong>{text.split(".", 1)[1]}</p>\n'


def _inline(text: str) -> str:
    """A line of the README's markdown as HTML: escaped, with its bold, code and italic marks."""
    text = html.escape(text)
    text = re.sub(r"[*][*](.+?)[*][*]", r"<strong>\1</strong>", text)
    text = re.sub(r"`(.+?)`", r"<code>\1</code>", text)
    return re.sub(r"(?<![*\w])[*](?![*\s])(.+?)(?<![*\s])[*](?![*\w])", r"<em>\1</em>", text)


def _control_section(readme: str) -> str:
    """The README's positive-control section (its rule, whether the control passed, and its table per exposure
    level) as the page's first section: a reader sees whether the control row trained at all before reading a
    verdict that rests on it. Empty where the README has none."""
    found = re.search(r"^## (Positive control: .+?)\n\n(.*?)(?=^## |^<!-- verdicts|\Z)", readme, re.S | re.M)
    if not found:
        return ""
    title, body = found.groups()
    paragraphs = [p.strip() for p in body.strip().split("\n\n") if p.strip()]
    text = "".join(f'<p class="how">{_inline(p)}</p>\n' for p in paragraphs if not p.startswith("|"))
    tables = [p for p in paragraphs if p.startswith("|")]
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in (tables[0].splitlines() if tables else [])
        if not set(line.strip()) <= set("|-: ")
    ]
    table = ""
    if rows:
        head = "".join(f'<th scope="col">{_inline(c)}</th>' for c in rows[0])
        body_rows = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
        table = f'<table class="control"><thead><tr>{head}</tr></thead><tbody>{body_rows}</tbody></table>\n'
    return f"<h2>{_inline(title)}</h2>\n{text}{table}"


def _verdict_items(readme: str, suite: str) -> str:
    """The README's verdicts as list items, with their markdown (bold, code, italic) as HTML and each verdict
    word coloured by what it says."""
    block = verdicts.block_in(readme, suite) or ""
    word = re.compile(r": (supported|contradicted|inconclusive)\.</strong>")
    return "".join(
        "<li>" + word.sub(r': <span class="verdict \1">\1</span>.</strong>', _inline(line)) + "</li>"
        for line in _verdict_lines(block)
    )


def _verdict_lines(block: str) -> list[str]:
    """The verdicts of a README's block, or the one line saying why the board publishes none (its positive
    control failed): a page must not show an empty list where the README says why it is empty."""
    lines = block.splitlines()
    return [ln[2:] for ln in lines if ln.startswith("- ")] or [ln for ln in lines if ln.startswith("**No verdicts")]


STYLE = """
:root{--blue:#0072B2;--vermillion:#D55E00;--purple:#CC79A7;--ink:#1d1d1d}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);margin:0;line-height:1.45}
main{max-width:1240px;margin:0 auto;padding:1.2em 20px 3em}
h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.2em;margin:1.6em 0 .5em;border-bottom:1px solid #ddd}
p.how{max-width:75em;font-size:14px;color:#333}
p.superseded{max-width:75em;background:#fff4e5;border-left:4px solid var(--vermillion);padding:.5em .8em}
table.control{border-collapse:collapse;font-size:13px;margin:.4em 0 1em}table.control th,table.control td{border:1px solid #ccc;padding:.2em .5em;text-align:left}ul.verdicts{padding-left:1.2em}ul.verdicts li{margin:.45em 0;max-width:75em;font-size:14px}
.verdict{padding:0 .35em;border-radius:3px;font-weight:600}
.verdict.supported{background:#cfe5f3}.verdict.contradicted{background:#f7d3bd}.verdict.inconclusive{background:#e9e9e9}
.filters{display:flex;flex-wrap:wrap;gap:.6em 1.2em;align-items:center;margin:.6em 0;font-size:14px}
.filters select,.filters button{font:inherit;padding:2px 4px}
#shown{color:#444}
.key{display:flex;flex-wrap:wrap;gap:.4em 1em;font-size:13px;margin:.3em 0 .6em}
.key span{padding:1px 6px;border-radius:3px}
.wrap{overflow-x:auto}
table.board{border-collapse:collapse;font-size:13px;width:100%}
table.board th,table.board td{padding:2px 5px;border-bottom:1px solid #e2e2e2;text-align:right;vertical-align:middle}
table.board td:nth-child(-n+3),table.board th:nth-child(-n+3){text-align:left;white-space:nowrap}
table.board th{background:#f3f3f3;position:sticky;top:0}
table.board th button{font:inherit;font-weight:600;background:none;border:0;padding:2px 0;cursor:pointer;color:inherit}
table.board th[aria-sort=ascending] button::after{content:" ▲"}
table.board th[aria-sort=descending] button::after{content:" ▼"}
td.cell{padding:0}
td.cell button.open{display:block;width:100%;font:inherit;text-align:right;background:none;border:0;padding:3px 6px;
 cursor:pointer;color:inherit;white-space:nowrap}
td.cell button.open:focus-visible{outline:3px solid #000;outline-offset:-3px}
td.cell small{display:block;font-size:11px;color:#555}
#expansion-table td.cell button.open{white-space:normal;min-width:8em}
td.pos-sig,.key .pos-sig{background:#bcd9ee}td.neg-sig,.key .neg-sig{background:#f5cdb3}
td.pos,.key .pos{background:#eef5fa}td.neg,.key .neg{background:#fcf2eb}
td.floor,.key .floor{background:#f1f1f1;color:#777}td.floor small{color:#888}
td.expanded,.key .expanded{background:#f3d9e7}td.untrained{color:#777}
strong.sig{font-weight:700}
figure{margin:1.2em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:13px;color:#444}
dialog#drill{max-width:min(1100px,94vw);width:94vw;border:1px solid #999;border-radius:6px;padding:1em 1.4em}
dialog#drill::backdrop{background:rgba(0,0,0,.25)}
dialog#drill h3{margin:.2em 0 .4em}dialog#drill h4{margin:1em 0 .3em}
#drill-body table{border-collapse:collapse;font-size:13px}
#drill-body th,#drill-body td{padding:2px 8px;border-bottom:1px solid #e2e2e2;text-align:right}
#drill-body td{white-space:nowrap}
#drill-body th:nth-child(2),#drill-body td:nth-child(2){text-align:left;white-space:nowrap}
.drill-head{display:flex;justify-content:space-between;align-items:flex-start;gap:1em}
.drill-head button{font:inherit;flex:none}
.drill-cols{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}
.example{border-top:1px solid #e2e2e2;padding:.3em 0}.example pre{margin:.2em 0;font-size:12px;white-space:pre-wrap}
.ex-cols{display:flex;flex-wrap:wrap;gap:1.5em}.ex-col{flex:1 1 20em}
.right{color:#0072B2;font-weight:600}.wrong{color:#D55E00;font-weight:600}
.swatch{display:inline-block;width:.8em;height:.8em;border-radius:50%;margin-right:.3em;vertical-align:-1px}
.note{font-size:13px;color:#444;max-width:60em}
"""

SCRIPT = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("board-data").textContent);
  function objects(table) {
    return table.rows.map(function (row) {
      var o = {};
      table.columns.forEach(function (c, i) { o[c] = row[i]; });
      return o;
    });
  }
  data.cells = objects(data.cells);
  data.seeds = objects(data.seeds);
  var runs = {};
  objects(data.runs).forEach(function (r) { runs[r.run] = r; });
  var problems = JSON.parse(document.getElementById("board-problems").textContent);
  var SEED_COLOURS = ["#E69F00", "#56B4E9", "#009E73", "#CC79A7", "#0072B2", "#D55E00"];
  var tables = Array.prototype.slice.call(document.querySelectorAll("table.board"));
  var selects = ["split", "exposure", "row", "trained"].map(function (k) { return document.getElementById("f-" + k); });

  function fmt(v, digits) {
    if (v === null || v === undefined || v !== v) return "n/a";
    return (v > 0 ? "+" : v < 0 ? "\u2212" : "+") + Math.abs(v).toFixed(digits === undefined ? 3 : digits);
  }
  function num(v, digits) { return v === null || v === undefined ? "n/a" : Number(v).toFixed(digits); }
  function esc(s) {
    return String(s).replace(/[&<>"]/g, function (c) { return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]; });
  }

  // ------------------------------------------------------------------ filters
  function apply() {
    var v = selects.map(function (s) { return s.value; });
    var shown = 0, total = 0;
    tables.forEach(function (table, t) {
      Array.prototype.forEach.call(table.tBodies[0].rows, function (tr) {
        var ok = (!v[1] || tr.dataset.exposure === v[1]) && (!v[2] || tr.dataset.row === v[2]) &&
                 (!v[3] || tr.dataset.trained === v[3]);
        tr.hidden = !ok;
        if (t === 0) { total += 1; shown += ok ? 1 : 0; }
      });
      table.querySelectorAll("[data-split]").forEach(function (c) { c.hidden = !!v[0] && c.dataset.split !== v[0]; });
    });
    document.getElementById("shown").textContent = "Showing " + shown + " of " + total + " rows";
  }
  selects.forEach(function (s) { s.addEventListener("change", apply); });
  document.getElementById("f-reset").addEventListener("click", function () {
    selects.forEach(function (s) { s.value = ""; });
    apply();
  });
  apply();

  // ------------------------------------------------------------------ sorting
  tables.forEach(function (table) {
    table.querySelectorAll("thead th").forEach(function (th) {
      th.addEventListener("click", function () {
        var col = th.cellIndex, asc = th.getAttribute("aria-sort") !== "ascending";
        var rows = Array.prototype.slice.call(table.tBodies[0].rows);
        function key(tr) {
          var td = tr.cells[col];
          if (td && td.dataset.v !== undefined) return td.dataset.v === "" ? null : parseFloat(td.dataset.v);
          return td ? td.innerText : "";
        }
        rows.sort(function (a, b) {
          var x = key(a), y = key(b);
          if (x === null || y === null) return x === y ? 0 : x === null ? 1 : -1;  // no value: last either way
          var c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
          return asc ? c : -c;
        });
        table.querySelectorAll("thead th").forEach(function (o) { o.setAttribute("aria-sort", "none"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        rows.forEach(function (r) { table.tBodies[0].appendChild(r); });
      });
    });
  });

  // ------------------------------------------------------------------ drill-down
  function decode(b64) {
    if (!b64) return null;
    var s = atob(b64), out = new Array(s.length);
    for (var i = 0; i < s.length; i++) {
      var c = s.charCodeAt(i);
      out[i] = c === problems.missing ? null : c * problems.step - problems.clip;
    }
    return out;
  }
  function seedsOf(cell) {
    return data.seeds.filter(function (s) {
      return s.row === cell.row && s.trained_on === cell.trained_on && s.exposure === cell.exposure && s.split === cell.split;
    });
  }
  function scatter(cell, seeds) {
    var W = 440, H = 330, L = 46, R = 12, T = 10, B = 40, lo = -problems.clip - 1, hi = 12;
    var sets = seeds.map(function (s, k) {
      var x = decode((problems.bases[runs[s.run].base] || {})[cell.split]);
      var y = decode((problems.posts[s.run] || {})[cell.split]);
      var flagged = ((problems.expanded[s.run] || {})[cell.split]) || [];
      (x || []).concat(y || []).forEach(function (v) { if (v !== null && v + 1 > hi) hi = Math.min(problems.clip + 1, Math.ceil(v) + 1); });
      return {x: x, y: y, flagged: flagged, colour: SEED_COLOURS[k % SEED_COLOURS.length], seed: s.seed};
    });
    function px(v) { return L + (v - lo) / (hi - lo) * (W - L - R); }
    function py(v) { return H - B - (v - lo) / (hi - lo) * (H - T - B); }
    var out = ['<svg xmlns="http://www.w3.org/2000/svg" width="' + W + '" height="' + H + '" role="img" ' +
               'aria-label="logit Q_post against logit Q_base, one point per problem and seed">'];
    var ox = Math.log(data.thresholds.outside / (1 - data.thresholds.outside));
    var sy = Math.log(data.thresholds.solved / (1 - data.thresholds.solved));
    out.push('<rect x="' + px(lo) + '" y="' + py(hi) + '" width="' + (px(ox) - px(lo)) + '" height="' + (py(sy) - py(hi)) +
             '" fill="#CC79A7" fill-opacity="0.12"/>');
    out.push('<rect x="' + L + '" y="' + T + '" width="' + (W - L - R) + '" height="' + (H - T - B) + '" fill="none" stroke="#888"/>');
    for (var t = -30; t <= hi; t += 10) {
      out.push('<text x="' + px(t) + '" y="' + (H - B + 14) + '" font-size="10" text-anchor="middle">' + t + "</text>");
      out.push('<text x="' + (L - 5) + '" y="' + (py(t) + 3) + '" font-size="10" text-anchor="end">' + t + "</text>");
    }
    out.push('<text x="' + (L + (W - L - R) / 2) + '" y="' + (H - 6) + '" font-size="11" text-anchor="middle">logit Q_base (exact)</text>');
    out.push('<text transform="translate(12 ' + (T + (H - T - B) / 2) + ') rotate(-90)" font-size="11" text-anchor="middle">logit Q_post (exact)</text>');
    function line(shift, attrs) {
      out.push('<line x1="' + px(lo) + '" y1="' + py(lo + shift) + '" x2="' + px(hi) + '" y2="' + py(hi + shift) + '" ' + attrs + "/>");
    }
    out.push('<clipPath id="plot-area"><rect x="' + L + '" y="' + T + '" width="' + (W - L - R) + '" height="' + (H - T - B) + '"/></clipPath><g clip-path="url(#plot-area)">');
    line(0, 'stroke="#999" stroke-width="1"');
    out.push('<line x1="' + px(ox) + '" y1="' + T + '" x2="' + px(ox) + '" y2="' + (H - B) + '" stroke="#666" stroke-dasharray="2 3"/>');
    out.push('<line x1="' + L + '" y1="' + py(sy) + '" x2="' + (W - R) + '" y2="' + py(sy) + '" stroke="#666" stroke-dasharray="2 3"/>');
    var tilts = seeds.map(function (s) { return runs[s.run].tilt_mean; }).filter(function (v) { return v !== null; });
    var bounds = seeds.map(function (s) { return runs[s.run].tilt_bound; })
      .filter(function (v) { return v !== null && isFinite(v); });
    if (tilts.length) line(tilts.reduce(function (a, b) { return a + b; }, 0) / tilts.length, 'stroke="#333" stroke-width="1.5"');
    if (bounds.length) {
      bounds.sort(function (a, b) { return a - b; });
      line(bounds[Math.floor(bounds.length / 2)], 'stroke="#000" stroke-dasharray="6 4"');
    }
    sets.forEach(function (set) {
      if (!set.x || !set.y) return;
      for (var i = 0; i < set.x.length; i++) {
        if (set.x[i] === null || set.y[i] === null) continue;
        out.push('<circle cx="' + px(set.x[i]).toFixed(1) + '" cy="' + py(set.y[i]).toFixed(1) + '" r="2.2" fill="' +
                 set.colour + '" fill-opacity="0.55"/>');
      }
      set.flagged.forEach(function (i) {
        out.push('<circle class="expanded" cx="' + px(set.x[i]).toFixed(1) + '" cy="' + py(set.y[i]).toFixed(1) +
                 '" r="4.5" fill="none" stroke="#000"/>');
      });
    });
    out.push("</g></svg>");
    var key = sets.map(function (s) {
      return '<span><span class="swatch" style="background:' + s.colour + '"></span>seed ' + esc(s.seed) + "</span>";
    }).join(" ");
    return out.join("") + '<p class="note">' + key + " &nbsp; ○ expanded beyond its run's tilt. Solid line: the runs' " +
      "mean fitted tilt; dashed: the median run's bound (expansion rises above it); dotted: Q_base = " +
      data.thresholds.outside_text + " and Q_post = " + data.thresholds.solved_text + " (the shaded corner: outside, then solved). " +
      "Log-odds clipped at \u00b1" + problems.clip + " and rounded to " + problems.step + ".</p>";
  }

  var examples = JSON.parse(document.getElementById("board-examples").textContent);
  function verdict(e) {
    return e.answer_ok && e.trace_ok ? '<span class="right">\u2713 right</span>' :
      '<span class="wrong">\u2717 ' + (e.answer_ok ? "answer right, trace wrong" : e.trace_ok ? "trace right, answer wrong" : "wrong") + "</span>";
  }
  function exampleSection(cell, seeds) {
    var isNull = cell.row === "null", head = "<h4>Sample texts</h4>";
    // the first seed whose record kept texts (records made before examples were kept have none)
    var s = seeds.filter(function (x) { return (examples[isNull ? runs[x.run].base : x.run] || {})[cell.split]; })[0] || seeds[0];
    var baseName = s ? runs[s.run].base : null;
    var post = s && !isNull ? (examples[s.run] || {})[cell.split] : null;
    var base = baseName ? (examples[baseName] || {})[cell.split] : null;
    if (!(isNull ? base : post) || !(isNull ? base : post).length) {
      return head + '<p class="note">None kept: these runs were recorded before records kept a few sample texts ' +
        "(they hold per-problem counts and exact log-probabilities only).</p>";
    }
    var byUid = {};
    (base || []).forEach(function (e) { byUid[e.family + "/" + e.uid] = e; });
    var shown = (isNull ? base : post).map(function (e) {
      var b = isNull ? e : byUid[e.family + "/" + e.uid];
      var cols = '<div class="ex-col"><b>base</b> ' + (b ? verdict(b) + "<pre>" + esc(b.sample) + "</pre>" : "<p>not kept</p>") + "</div>";
      if (!isNull) cols += '<div class="ex-col"><b>post-trained</b> ' + verdict(e) + "<pre>" + esc(e.sample) + "</pre></div>";
      return '<div class="example"><p class="note">' + esc(e.family) + " problem " + esc(e.uid) + "</p><pre>" + esc(e.prompt) +
        '</pre><div class="ex-cols">' + cols + "</div><details><summary>gold trace</summary><pre>" + esc(e.gold) + "</pre></details></div>";
    }).join("");
    return head + '<p class="note">The first sampled completion of ' + (isNull ? "the base" : "seed " + esc(s.seed) + "'s run and its base") +
      " on the first test problems of each family (the same problems for every run), scored by the family's verifier.</p>" + shown;
  }

  var dialog = document.getElementById("drill"), opener = null;
  function open(i) {
    var cell = data.cells[i], seeds = seedsOf(cell), isNull = cell.row === "null";
    var who = isNull ? "null: each base against itself re-sampled" : cell.row + " trained on " + cell.trained_on;
    document.getElementById("drill-title").textContent = who + " \u00b7 exposure " + cell.exposure_label + " \u00b7 evaluated on " + cell.split;
    var parts = [];
    var floor = cell.trace_base === 0 && cell.trace_post === 0;
    parts.push("<p>Change in trace pass@1: <strong>" + (floor ? "0 \u2192 0 (no trace right in either model)" :
      fmt(cell.d_trace) + " [" + fmt(cell.d_trace_lo) + ", " + fmt(cell.d_trace_hi) + "]") + "</strong>, p " + num(cell.d_trace_p, 3) +
      ", q " + num(cell.q, 3) + ", mde " + num(cell.mde, 3) + "; trace pass@1 " + num(cell.trace_base, 3) + " \u2192 " +
      num(cell.trace_post, 3) + ". Answer pass@1 change " + fmt(cell.d_answer) + " [" + fmt(cell.d_answer_lo) + ", " +
      fmt(cell.d_answer_hi) + "]; exact trace mass change " + fmt(cell.d_mass, 4) + ". " + cell.seeds + " seed(s), " +
      cell.problems + " problems in all. Interval: " + esc(cell.interval) + ".</p>");
    parts.push("<p>Outside the base's support (Q_base &lt; " + data.thresholds.outside_text + "): " + cell.outside +
      "; expanded beyond the run's tilt: " + (cell.expanded === null ? "n/a" : cell.expanded) + "; past the fixed thresholds: " +
      cell.expanded_threshold + ".</p>");
    var rows = seeds.map(function (s) {
      var run = runs[s.run];
      return "<tr><td data-k=\"seed\" data-v=\"" + s.seed + "\">" + esc(s.seed) + "</td><td>" + esc(s.run) + "</td>" +
        "<td data-k=\"problems\" data-v=\"" + s.problems + "\">" + s.problems + "</td>" +
        "<td data-k=\"trace_base\" data-v=\"" + s.trace_base + "\">" + num(s.trace_base, 3) + "</td>" +
        "<td data-k=\"trace_post\" data-v=\"" + s.trace_post + "\">" + num(s.trace_post, 3) + "</td>" +
        "<td data-k=\"d_trace\" data-v=\"" + s.d_trace + "\">" + fmt(s.d_trace) + "</td>" +
        "<td data-k=\"d_answer\" data-v=\"" + s.d_answer + "\">" + fmt(s.d_answer) + "</td>" +
        "<td data-k=\"outside\" data-v=\"" + s.outside + "\">" + s.outside + "</td>" +
        "<td data-k=\"expanded\" data-v=\"" + (s.expanded === null ? "" : s.expanded) + "\">" + (s.expanded === null ? "n/a" : s.expanded) + "</td>" +
        "<td>" + (run.trained === null ? "-" : run.trained ? "yes" : "no") + "</td>" +
        "<td data-k=\"rollouts\" data-v=\"" + run.rollouts + "\">" + Number(run.rollouts).toLocaleString("en") + "</td>" +
        "<td data-k=\"train_tokens\" data-v=\"" + run.train_tokens + "\">" + Number(run.train_tokens).toLocaleString("en") + "</td>" +
        "<td data-k=\"wall_s\" data-v=\"" + run.wall_s + "\">" + (run.wall_s / 60).toFixed(1) + " min</td></tr>";
    }).join("");
    parts.push('<h4>Per seed</h4><div class="wrap"><table id="drill-seeds"><thead><tr><th>seed</th><th>run</th><th>problems</th>' +
      "<th>trace pass@1 base</th><th>post</th><th>change</th><th>answer change</th><th>outside</th><th>expanded</th>" +
      "<th>trained</th><th>rollouts</th><th>train tokens</th><th>wall</th></tr></thead><tbody>" + rows + "</tbody></table></div>");
    parts.push("<h4>Compute (mean per run)</h4><p>" + (isNull ? "none: a re-sampled base trains nothing." :
      Math.round(cell.rollouts).toLocaleString("en") + " rollouts, " + Math.round(cell.train_tokens).toLocaleString("en") +
      " training tokens, " + Math.round(cell.grad_steps) + " gradient steps, " + (cell.wall_s / 60).toFixed(1) + " min wall (training and evaluation); " +
      (cell.runs_checked ? cell.runs_trained + " of " + cell.runs_checked + " runs trained (reward rose)." : "no reward curve to check.")) + "</p>");
    parts.push("<h4>Per problem: Q_base against Q_post</h4>" + (isNull ?
      '<p class="note">A base against itself re-sampled: its exact masses do not change, so there is nothing to scatter.</p>' :
      scatter(cell, seeds)));
    parts.push(exampleSection(cell, seeds));
    document.getElementById("drill-body").innerHTML = parts.join("");
    opener = document.activeElement;
    if (dialog.open) dialog.close();
    dialog.showModal();
    dialog.scrollTop = 0;
  }
  document.querySelectorAll("button.open").forEach(function (b) {
    b.addEventListener("click", function () { open(parseInt(b.dataset.cell, 10)); });
  });
  document.getElementById("drill-close").addEventListener("click", function () { dialog.close(); });
  dialog.addEventListener("close", function () { if (opener) opener.focus(); });
})();
"""


def page(
    rec,
    head: pd.DataFrame,
    per_seed: pd.DataFrame,
    runs: pd.DataFrame,
    problems: dict,
    examples: dict,
    pngs: dict[str, bytes],
    readme: str,
    splits: list[str],
    info: dict,
    files: dict[str, str],
) -> str:
    """The page's HTML (``pngs`` by plot key; empty bytes leave an empty image, as ``--check`` renders it).
    ``rec``: the suite's ``records.Records``; ``head``: its headline; ``per_seed`` and ``runs``:
    ``board_data.seed_rows`` and ``run_rows``; ``problems``: ``problem_blob``; ``examples``: ``example_blob``;
    ``splits``: the table's columns; ``info``: the suite's description and what it left out; ``files``: each
    plot's file name."""
    th = Thresholds()
    head = head.reset_index(drop=True)
    ordered = pd.concat([head[head["row"] != "null"], head[head["row"] == "null"]])
    data = {
        "cells": columns(head[[c for c in CELL_COLUMNS if c in head.columns]]),
        "seeds": columns(per_seed),
        "runs": columns(runs),
        "thresholds": {
            "outside": th.outside,
            "solved": th.solved,
            "outside_text": f"{th.outside:g}",
            "solved_text": f"{th.solved:g}",
        },
    }
    captions = {
        "gain": "Change in trace pass@1 on each OOD axis against the base's pretraining exposure to it, per family: "
        "GRPO and the SFT control trained on the axis (solid) and on ID (dashed), the null (grey), each seed "
        "behind its mean and 95% interval; other rows faded.",
        "tilt": "Every problem's exact gold-trace log-odds before and after, on the split its run trained on, with "
        "each exposure's fitted tilt and the bound a problem must rise beyond to count as expansion (ringed).",
        "passk": "Trace pass@k of the base against each headline row, per split and exposure (log k).",
        "curves": "Reward, KL to the reference and entropy by step, per row and training split: the mean over "
        "pretraining seeds with their range, smoothed.",
    }
    images = "".join(
        f'<figure><img alt="{html.escape(captions[name])}" src="data:image/png;base64,'
        f'{base64.b64encode(blob).decode()}"><figcaption>{html.escape(files[name])}: '
        f"{html.escape(captions[name])}</figcaption></figure>"
        for name, blob in pngs.items()
    )
    key = (
        '<div class="key" aria-hidden="true"><span class="pos-sig">▲ gain, q &lt; 0.05</span>'
        '<span class="neg-sig">▼ loss, q &lt; 0.05</span><span class="pos">gain, not significant</span>'
        '<span class="neg">loss, not significant</span><span class="floor">0 → 0: no trace right</span></div>'
    )
    q_tests = int(head["q"][head["row"] != "null"].notna().sum())
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>ood-bench leaderboard: {html.escape(rec.suite)}</title><style>{STYLE}</style></head><body><main>\n"
        f"<h1>ood-bench leaderboard: {html.escape(rec.suite)}</h1>\n<p>{html.escape(info['description'])}</p>\n"
        f"<p>{len(rec.bases())} bases, {len(rec.posts())} post-training runs. Filter the tables below, sort them by "
        "any column, and open any cell for its seeds, compute and problems.</p>\n"
        + _superseded(readme)
        + _control_section(readme)
        + f'<h2>Verdicts on the paper\'s claims (generated)</h2>\n<p class="how">{html.escape(verdicts.TRAINING_NOTE)}</p>\n'
        f'<ul class="verdicts">{_verdict_items(readme, rec.suite)}</ul>\n'
        "<h2>Change in trace pass@1 after post-training</h2>\n"
        '<p class="how">Each cell: the mean change of the sampled trace pass@1 (every step and the answer right), '
        "post-trained model minus its own base, over every pretraining seed and both families, above its 95% "
        f"interval. Marked and coloured: the Benjamini-Hochberg q-value over the board's {q_tests} tests is under "
        "0.05. The null rows compare each base with a second evaluation of itself. Compute is per run.</p>\n"
        f"{_filters(head, splits)}\n{key}\n{_table(ordered, splits, _gain_cell, True, 'gain-table')}\n"
        "<h2>Expansion beyond the base's support (exact)</h2>\n"
        '<p class="how">Problems outside the base\'s support (Q_base &lt; 1e-6) that the post-trained model solves '
        "(Q_post ≥ 1e-2) and whose log-odds rose beyond the run's own tilt: how many of how many, the rate with its "
        "95% interval, and the old fixed-threshold count.</p>\n"
        f"{_table(ordered[ordered['row'] != 'null'], splits, _expansion_cell, False, 'expansion-table')}\n"
        f"<h2>Plots</h2>\n{images}\n"
        f"<p>Left out: {html.escape(info['left_out'])}</p>\n</main>\n"
        '<dialog id="drill" aria-labelledby="drill-title"><div class="drill-head"><h3 id="drill-title"></h3>'
        '<button type="button" id="drill-close">Close (Esc)</button></div><div id="drill-body"></div></dialog>\n'
        f'<script type="application/json" id="board-data">{_script_json(data)}</script>\n'
        f'<script type="application/json" id="board-problems">{_script_json(problems)}</script>\n'
        f'<script type="application/json" id="board-examples">{_script_json(examples)}</script>\n'
        f"<script>{SCRIPT}</script>\n</body></html>\n"
    )


def same_page(committed: str, regenerated: str) -> bool:
    """Whether a committed page shows what the records give: its text and numbers at the tables' tolerance
    (``numeric_text``), its per-problem block exactly; its images are checked by their PNGs' digests, since
    their pixels depend on the plotting library's version."""

    def split(page: str) -> tuple[str, str]:
        page = IMAGE.sub('src=""', page)
        found = PROBLEMS_BLOCK.search(page)
        return (PROBLEMS_BLOCK.sub(r"\1\3", page), found.group(2)) if found else (page, "")

    text_a, blob_a = split(committed)
    text_b, blob_b = split(regenerated)
    return blob_a == blob_b and same_up_to_rounding(text_a, text_b)
