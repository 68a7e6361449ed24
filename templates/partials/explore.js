/* The HTML report's explorer, inlined by base.html.j2 (no network; works opened as a local file). WeasyPrint runs no script,
   so the PDF printed from the same HTML does not change. It adds:
   - a fixed sidebar of the sections (every section with an id, two levels), scrolling to them;
   - collapsible run details: each .run-detail[data-label] becomes a <details>, open when the PDF keeps it
     (data-printed="true", or not inside .html-only when the document marks what the PDF leaves out), else closed;
   - sortable tables: a click on a column head of a table with a <thead> sorts its rows by that column (numbers by
     value, "97.1%" and "0.95 [0.90-0.98]" by the leading estimate, h:m:s as seconds; text alphabetically; rows
     with class total or mean stay last; a second click reverses);
   - confusion-cell viewer: in a table.confusion[data-dataset] a click on a td[data-true][data-pred] opens the
     images of that cell (thumbnail, file name, run, probabilities) from the JSON in #explore-data (one table sums
     the report's own runs; with data-run, that run only).
   No Jinja2 delimiters and no closing script tag in this file (tests/report/test_explore.py checks). */
(function () {
  "use strict";

  var DATA = { datasets: {} };
  var dataElement = document.getElementById("explore-data");
  if (dataElement) { DATA = JSON.parse(dataElement.textContent); }

  function clean(el) { return (el.textContent || "").replace(/\s+/g, " ").trim(); }

  function openAncestors(el) {
    var own = el.querySelector(":scope > details.explore-run");  // a run detail's own toggle
    if (own) { own.open = true; }
    for (var node = el; node; node = node.parentElement) {
      if (node.tagName === "DETAILS" && !node.open) { node.open = true; }
    }
  }

  /* ---- collapsible run details ---- */
  function makeCollapsible() {
    var marked = document.querySelector(".html-only") !== null;
    var nodes = Array.prototype.slice.call(document.querySelectorAll(".run-detail[data-label]"));
    nodes.forEach(function (el) {
      var details = document.createElement("details");
      details.className = "explore-run";
      var kept = el.getAttribute("data-printed") === "true" || (marked && !el.closest(".html-only"));
      details.open = kept;
      var summary = document.createElement("summary");
      summary.textContent = el.getAttribute("data-label");
      if (kept) {
        var note = document.createElement("span");
        note.className = "explore-kept";
        note.textContent = " (also in the PDF)";
        summary.appendChild(note);
      }
      details.appendChild(summary);
      var body = document.createElement("div");
      body.className = "explore-run-body";
      while (el.firstChild) { body.appendChild(el.firstChild); }
      details.appendChild(body);
      el.appendChild(details);
    });
  }

  /* ---- sidebar ---- */
  function sectionTitle(section) {
    var heading = section.querySelector("h1, h2, h3, h4");
    if (heading) { return clean(heading); }
    var label = section.getAttribute("data-label");
    return label || section.id;
  }

  function parentSection(section) {
    var node = section.parentElement;
    while (node && !(node.tagName === "SECTION" && node.id)) { node = node.parentElement; }
    return node;
  }

  function buildSidebar() {
    var sections = Array.prototype.slice.call(document.querySelectorAll("section[id]"));
    if (!sections.length) { return; }
    var nav = document.createElement("nav");
    nav.id = "explore-sidebar";
    nav.setAttribute("aria-label", "Sections");
    var top = document.createElement("ol");
    nav.appendChild(top);
    var lists = new Map();
    var links = [];
    sections.forEach(function (section) {
      var parent = parentSection(section);
      var list;
      if (!parent) {
        list = top;
      } else if (lists.has(parent) && !parentSection(parent)) {
        list = lists.get(parent);
      } else {
        return;  // two levels only
      }
      var item = document.createElement("li");
      var link = document.createElement("a");
      link.href = "#" + section.id;
      link.textContent = sectionTitle(section);
      link.setAttribute("data-target", section.id);
      item.appendChild(link);
      list.appendChild(item);
      links.push({ link: link, section: section });
      if (!parent) {
        var sub = document.createElement("ol");
        item.appendChild(sub);
        lists.set(section, sub);
      }
    });
    nav.addEventListener("click", function (event) {
      var link = event.target.closest("a[data-target]");
      if (!link) { return; }
      var target = document.getElementById(link.getAttribute("data-target"));
      if (target) { openAncestors(target); }
    });
    var toggle = document.createElement("button");
    toggle.id = "explore-toggle";
    toggle.type = "button";
    toggle.textContent = "\u2630 Sections";
    toggle.addEventListener("click", function () { document.body.classList.toggle("explore-side-hidden"); });
    document.body.insertBefore(nav, document.body.firstChild);
    document.body.insertBefore(toggle, nav);
    document.body.classList.add("explore-on");
    if (window.innerWidth < 960) { document.body.classList.add("explore-side-hidden"); }

    var pending = false;
    function markActive() {
      pending = false;
      var current = null;
      for (var i = 0; i < links.length; i++) {
        var box = links[i].section.getBoundingClientRect();
        if (box.height > 0 && box.top <= 40) { current = links[i]; }
      }
      links.forEach(function (l) { l.link.classList.toggle("active", l === current); });
    }
    window.addEventListener("scroll", function () {
      if (!pending) { pending = true; window.requestAnimationFrame(markActive); }
    }, { passive: true });
    markActive();
  }

  function followHash() {
    if (!location.hash) { return; }
    var target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (target) { openAncestors(target); target.scrollIntoView(); }
  }

  /* ---- sortable tables ---- */
  var MISSING = /^(|\u2014|\u2013|-|n\/a|na|nan|none)$/i;
  var NUMBER = /^[<>\u2264\u2265~\u2248]?\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)/i;
  var CLOCK = /^(\d+):(\d{2})(?::(\d{2}))?(?:\.\d+)?$/;

  function sortValue(text) {
    var t = text.replace(/\u2212/g, "-").replace(/(\d)[\u2009\u202f\u00a0](?=\d{3}\b)/g, "$1").trim();
    if (MISSING.test(t)) { return { missing: true }; }
    var clock = CLOCK.exec(t);
    if (clock) {
      var secs = clock[3] === undefined ? +clock[1] * 60 + +clock[2] : +clock[1] * 3600 + +clock[2] * 60 + +clock[3];
      return { number: secs, text: t };
    }
    var m = NUMBER.exec(t);
    return m ? { number: parseFloat(m[1]), text: t } : { text: t };
  }

  function headerGrid(thead) {
    var grid = [];
    Array.prototype.forEach.call(thead.rows, function (row, r) {
      grid[r] = grid[r] || [];
      var c = 0;
      Array.prototype.forEach.call(row.cells, function (cell) {
        while (grid[r][c]) { c++; }
        for (var dr = 0; dr < (cell.rowSpan || 1); dr++) {
          grid[r + dr] = grid[r + dr] || [];
          for (var dc = 0; dc < (cell.colSpan || 1); dc++) { grid[r + dr][c + dc] = cell; }
        }
        if ((cell.colSpan || 1) === 1) { cell.setAttribute("data-explore-col", c); }
        c += cell.colSpan || 1;
      });
    });
  }

  function cellAt(row, col) {
    var c = 0;
    for (var i = 0; i < row.cells.length; i++) {
      var span = row.cells[i].colSpan || 1;
      if (col < c + span) { return span === 1 ? row.cells[i] : null; }
      c += span;
    }
    return null;
  }

  function sortTable(table, th) {
    var col = +th.getAttribute("data-explore-col");
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(table.querySelectorAll("thead th[aria-sort]"), function (h) {
      h.setAttribute("aria-sort", "none");
    });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    Array.prototype.forEach.call(table.tBodies, function (tbody) {
      var rows = Array.prototype.slice.call(tbody.rows);
      var pinned = rows.filter(function (r) { return r.classList.contains("total") || r.classList.contains("mean"); });
      var items = rows.filter(function (r) { return pinned.indexOf(r) < 0; }).map(function (r, i) {
        var cell = cellAt(r, col);
        return { row: r, index: i, value: sortValue(cell ? clean(cell) : "") };
      });
      var present = items.filter(function (x) { return !x.value.missing; });
      var numeric = present.filter(function (x) { return x.value.number !== undefined; }).length;
      var byNumber = present.length > 0 && numeric * 2 >= present.length;
      items.sort(function (a, b) {
        var ma = a.value.missing || (byNumber && a.value.number === undefined);
        var mb = b.value.missing || (byNumber && b.value.number === undefined);
        if (ma || mb) { return ma === mb ? a.index - b.index : (ma ? 1 : -1); }  // missing last either way
        var d = byNumber ? a.value.number - b.value.number
          : a.value.text.localeCompare(b.value.text, undefined, { numeric: true, sensitivity: "base" });
        if (!ascending) { d = -d; }
        return d || a.index - b.index;
      });
      items.forEach(function (x) { tbody.appendChild(x.row); });
      pinned.forEach(function (r) { tbody.appendChild(r); });
    });
  }

  function makeSortable() {
    Array.prototype.forEach.call(document.querySelectorAll("table"), function (table) {
      var thead = table.tHead;
      if (!thead || !table.tBodies.length || table.querySelector("tbody [rowspan]:not([rowspan='1'])")) { return; }
      headerGrid(thead);
      var heads = thead.querySelectorAll("th[data-explore-col]");
      if (!heads.length) { return; }
      table.classList.add("explore-sortable");
      Array.prototype.forEach.call(heads, function (th) {
        th.setAttribute("aria-sort", "none");
        th.setAttribute("title", "Sort by this column (again: reverse)");
        th.tabIndex = 0;
        th.addEventListener("click", function () { sortTable(table, th); });
        th.addEventListener("keydown", function (event) {
          if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sortTable(table, th); }
        });
      });
    });
  }

  /* ---- confusion-cell viewer ---- */
  function runsOf(table, dataset) {
    var label = table.getAttribute("data-run");
    if (!label) { return dataset.runs.filter(function (r) { return r.main; }); }
    var found = dataset.runs.filter(function (r) { return r.label === label; });
    if (!found.length) {
      found = dataset.runs.filter(function (r) {
        return label.indexOf(r.label) >= 0 && r.variant && label.indexOf(r.variant) >= 0;
      });
    }
    if (found.length <= 1) { return found; }
    var ids = [];
    for (var node = table; node; node = node.parentElement) {
      if (node.id) { ids.push(node.id); }
      var v = node.getAttribute && node.getAttribute("data-variant");
      if (v) { ids.push("variant:" + v); }
    }
    var inside = found.filter(function (r) {
      return ids.indexOf(r.anchor) >= 0 || ids.indexOf(r.variant + "-" + r.anchor) >= 0 ||
        ids.indexOf("variant:" + r.variant) >= 0 || ids.indexOf("variant-" + r.variant) >= 0;
    });
    if (inside.length === 1) { return inside; }
    var main = found.filter(function (r) { return r.main; });
    return main.length === 1 ? main : [];
  }

  function cellEntries(dataset, runs, trueClass, predClass) {
    var t = dataset.classes.indexOf(trueClass);
    var p = dataset.classes.indexOf(predClass);
    var entries = [];
    runs.forEach(function (run) {
      run.rows.forEach(function (row) {
        if (row[1] === p && dataset.images[row[0]][1] === t) {
          entries.push({ image: dataset.images[row[0]], run: run, pPred: row[2], pTrue: row[3] });
        }
      });
    });
    var perImage = new Map();
    entries.forEach(function (e) { perImage.set(e.image, (perImage.get(e.image) || 0) + 1); });
    entries.sort(function (a, b) {
      return (perImage.get(b.image) - perImage.get(a.image)) || (a.image[0] < b.image[0] ? -1 : a.image[0] > b.image[0] ? 1 : 0);
    });
    return { entries: entries, images: perImage.size };
  }

  var viewer = null;
  function getViewer() {
    if (viewer) { return viewer; }
    viewer = document.createElement("dialog");
    viewer.id = "explore-viewer";
    viewer.setAttribute("aria-label", "Images of a confusion-matrix cell");
    viewer.addEventListener("click", function (event) { if (event.target === viewer) { viewer.close(); } });
    document.body.appendChild(viewer);
    return viewer;
  }

  function runName(run) { return run.variant ? run.variant + " \u00b7 " + run.label : run.label; }

  function openCell(table, td) {
    var dataset = DATA.datasets[table.getAttribute("data-dataset")];
    var runs = runsOf(table, dataset);
    var trueClass = td.getAttribute("data-true");
    var predClass = td.getAttribute("data-pred");
    var found = cellEntries(dataset, runs, trueClass, predClass);
    var dialog = getViewer();
    dialog.textContent = "";
    var head = document.createElement("div");
    head.className = "explore-head";
    var title = document.createElement("h3");
    title.textContent = dataset.title + ": true " + trueClass + ", predicted " + predClass;
    head.appendChild(title);
    var info = document.createElement("p");
    info.className = "explore-count";
    info.textContent = found.entries.length + " prediction(s) of " + found.images + " image(s); run(s): " +
      runs.map(runName).join(", ") + ". Probabilities from predictions.csv.";
    head.appendChild(info);
    var expected = parseInt(clean(td), 10);
    if (expected !== found.entries.length) {
      var warn = document.createElement("p");
      warn.className = "explore-warning";
      warn.textContent = "The table's cell says " + clean(td) + "; the predictions give " + found.entries.length + ".";
      head.appendChild(warn);
    }
    var close = document.createElement("button");
    close.type = "button";
    close.className = "explore-close";
    close.textContent = "Close";
    close.addEventListener("click", function () { dialog.close(); });
    head.appendChild(close);
    dialog.appendChild(head);
    var grid = document.createElement("div");
    grid.className = "explore-grid";
    found.entries.forEach(function (e) {
      var tile = document.createElement("figure");
      tile.className = "explore-tile";
      var img = document.createElement("img");
      img.loading = "lazy";
      img.decoding = "async";
      img.alt = e.image[0];
      img.src = e.image[2];
      tile.appendChild(img);
      var cap = document.createElement("figcaption");
      var file = document.createElement("div");
      file.className = "explore-file";
      file.title = e.image[0];
      file.textContent = e.image[0].split("/").pop();
      cap.appendChild(file);
      var run = document.createElement("div");
      run.className = "explore-run-label";
      run.textContent = runName(e.run);
      cap.appendChild(run);
      var probs = document.createElement("div");
      probs.className = "explore-probs";
      probs.textContent = trueClass === predClass ? "p = " + e.pPred : "p(" + predClass + ") " + e.pPred +
        ", p(" + trueClass + ") " + e.pTrue;
      cap.appendChild(probs);
      tile.appendChild(cap);
      grid.appendChild(tile);
    });
    dialog.appendChild(grid);
    if (typeof dialog.showModal === "function") { dialog.showModal(); } else { dialog.setAttribute("open", ""); }
    close.focus();
  }

  function linkConfusionCells() {
    Array.prototype.forEach.call(document.querySelectorAll("table.confusion[data-dataset]"), function (table) {
      var dataset = DATA.datasets[table.getAttribute("data-dataset")];
      if (!dataset) { return; }
      Array.prototype.forEach.call(table.querySelectorAll("td[data-true][data-pred]"), function (td) {
        var n = parseInt(clean(td), 10);
        if (!(n > 0)) { return; }
        td.classList.add("explore-cell");
        td.tabIndex = 0;
        td.setAttribute("role", "button");
        td.title = "Show the " + n + " image(s) of this cell";
        td.addEventListener("click", function () { openCell(table, td); });
        td.addEventListener("keydown", function (event) {
          if (event.key === "Enter" || event.key === " ") { event.preventDefault(); openCell(table, td); }
        });
      });
    });
  }

  function start() {
    makeCollapsible();
    makeSortable();
    linkConfusionCells();
    buildSidebar();
    window.addEventListener("hashchange", followHash);
    followHash();
    document.documentElement.setAttribute("data-explore", "ready");
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
