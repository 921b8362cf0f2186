"""The report page's stylesheet and table-sorting script: static text, apart from the HTML code."""

CSS = """
:root { --ink: #1a1a1a; --muted: #4a4a4a; --line: #d0d0d0; --accent: #0b4f8a;
        --warn-bg: #fff1e0; --warn: #7a3300; --ok: #1e5b2a; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif;
       color: var(--ink); background: #fff; }
header, main, footer { max-width: 1200px; margin: 0 auto; padding: 0 1.25rem; }
header { padding-top: 1.5rem; border-bottom: 1px solid var(--line); }
h1 { margin: 0 0 .25rem; font-size: 1.8rem; }
h2 { margin-top: 2.5rem; border-bottom: 2px solid var(--ink); padding-bottom: .2rem; }
h3 { margin-top: 2rem; }
a { color: var(--accent); }
a:focus, button:focus, summary:focus { outline: 3px solid #f2a900; outline-offset: 2px; }
.muted { color: var(--muted); }
.banner { background: var(--warn-bg); color: var(--warn); border-left: 4px solid var(--warn);
          padding: .6rem 1rem; margin: 1rem 0; }
nav ul { padding-left: 1.2rem; margin: .3rem 0 1rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .93rem; }
caption { text-align: left; font-weight: 600; padding: .3rem 0; }
th, td { border-bottom: 1px solid var(--line); padding: .25rem .6rem; text-align: left;
         vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
th button { font: inherit; font-weight: 600; background: none; border: 0; padding: 0;
            cursor: pointer; color: var(--ink); text-decoration: underline dotted; }
.piece { border: 1px solid var(--line); border-radius: 6px; padding: .8rem 1rem 1rem;
         margin: 1rem 0; }
.piece h3, .piece h4 { margin: 0 0 .5rem; font-size: 1.15rem; }
.piece-body { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 1.2rem; }
@media (max-width: 900px) { .piece-body { grid-template-columns: 1fr; } }
figure { margin: 0; }
img { max-width: 100%; height: auto; border: 1px solid var(--line); }
audio { width: 100%; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .15rem .8rem; margin: .6rem 0; }
dt { color: var(--muted); }
dd { margin: 0; overflow-wrap: anywhere; }  /* long paths wrap inside the card */
pre { background: #f4f4f4; padding: .5rem .7rem; overflow-x: auto; white-space: pre-wrap;
      word-break: break-all; }
code { user-select: all; }
.flag { display: inline-block; font-size: .8rem; font-weight: 600; padding: .05rem .45rem;
        border-radius: 3px; background: var(--warn-bg); color: var(--warn);
        border: 1px solid var(--warn); margin-left: .4rem; vertical-align: middle; }
.outside { color: var(--warn); font-weight: 600; }
.inside { color: var(--ok); }
.cols { display: flex; flex-wrap: wrap; align-items: flex-start; gap: 0 2.5rem; }
footer { margin-top: 3rem; padding-bottom: 2rem; border-top: 1px solid var(--line); }
"""

SORT_SCRIPT = """
document.querySelectorAll("table.sortable th button").forEach(function (button) {
  button.addEventListener("click", function () {
    var th = button.closest("th"), table = th.closest("table"), body = table.tBodies[0];
    var column = Array.prototype.indexOf.call(th.parentNode.children, th);
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    function key(row) {
      var cell = row.cells[column], value = cell.getAttribute("data-sort");
      if (value === null) { value = cell.textContent; }
      var number = parseFloat(value);
      return isNaN(number) ? [1, value] : [0, number];
    }
    Array.prototype.slice.call(body.rows).sort(function (a, b) {
      var x = key(a), y = key(b);
      var order = x[0] - y[0] || (x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0);
      return ascending ? order : -order;
    }).forEach(function (row) { body.appendChild(row); });
  });
});
"""
