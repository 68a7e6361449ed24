"""The HTML report's explorer in a real headless Chromium, opened from file://: no console error, sidebar links
scroll to their section, sorting reorders rows by value, a confusion cell shows its images, run details collapse.
Screenshots go to $LEUKOREPORT_SCREENSHOTS (or a tmp folder)."""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from leukoreport.report import render
from leukoreport.report.sections.explore import ExploreData

SEEDS = (1, 2)
DATASETS = ("test", "ext")
NUMBER = re.compile(r"^[<>≤≥]?\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)", re.I)

# A page that uses every feature with known values: nested sections, run details kept in / left out of the PDF,
# a table of mixed formats, a confusion table.
PAGE = """{% extends "base.html.j2" %}
{% block content %}
<section id="one"><h2>1. First</h2><p style="height: 1500px">text</p></section>
<section id="two"><h2>2. Second</h2>
  <table id="mixed">
  <thead><tr><th>Run</th><th class="num">accuracy</th><th class="num">F1</th><th>time</th></tr></thead>
  <tbody>
    <tr><th>seed 10</th><td>97.1% [95.0–98.2]</td><td>0.95 [0.90–0.98]</td><td>0:01:05</td></tr>
    <tr><th>seed 2</th><td>—</td><td>0.5 [0.4–0.6]</td><td>0:00:50</td></tr>
    <tr><th>seed 1</th><td>100.0% [99.0–100.0]</td><td>−0.25 [−0.3–0.1]</td><td>1:00:00</td></tr>
    <tr><th>ensemble</th><td>9.5%</td><td>n/a</td><td>0:00:07</td></tr>
    <tr class="mean"><th>mean ± SD</th><td>1.0%</td><td>0.1</td><td>0:00:01</td></tr>
  </tbody></table>
  <section id="two-a"><h3>2.1 Sub</h3><p style="height: 1500px">text</p></section>
</section>
<section class="seed run-detail" id="run-kept" data-label="seed 1 (in the PDF)" data-printed="true">
  <h2>3. Seed 1</h2><p style="height: 1500px">kept</p></section>
<section class="seed run-detail html-only" id="run-left" data-label="seed 2">
  <h2>4. Seed 2</h2><p id="left-text" style="height: 1500px">left out of the PDF</p></section>
<p style="height: 1500px">end</p>
{% endblock %}
"""


def _open(browser, path: Path) -> None:
    browser.get(path.resolve().as_uri())
    assert browser.current_url.startswith("file://")
    assert browser.execute_script("return document.documentElement.getAttribute('data-explore')") == "ready"


def _severe(browser) -> list[dict]:
    return [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


@pytest.fixture(scope="module")
def report_page(tmp_path_factory, make_fake_results, render_fake):
    """The full report of a fake run (2 seeds × test and one external set) written to report.html."""
    root = tmp_path_factory.mktemp("browser")
    results = make_fake_results(root, seeds=SEEDS, datasets=DATASETS)
    path = results / "report" / "report.html"
    render.write_html(render_fake(results, SEEDS, DATASETS)[1], path)
    return path, results


@pytest.fixture(scope="module")
def synthetic_page(tmp_path_factory, templates):
    """PAGE rendered with the real base.html.j2, style.css and explorer files."""
    folder = tmp_path_factory.mktemp("templates")
    for name in ("base.html.j2", "style.css", "partials/explore.js", "partials/explore.css"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(templates / name, folder / name)
    (folder / "page.html.j2").write_text(PAGE, encoding="utf-8")
    explore = {"data": ExploreData({"version": 1, "datasets": {}}, folder)}
    path = folder / "page.html"
    path.write_text(render.render_html({"title": "Synthetic", "explore": explore}, folder, "page"), encoding="utf-8")
    return path


def test_report_loads_from_file_without_console_errors(browser, report_page, screenshot_dir):
    """No SEVERE entry in the browser log, and nothing was fetched but the file itself and data: URIs."""
    browser.get_log("browser")  # drop entries of earlier pages
    _open(browser, report_page[0])
    assert _severe(browser) == []
    fetched = browser.execute_script(
        "return performance.getEntriesByType('resource').map(function (e) { return e.name; })")
    assert all(name.startswith(("file:", "data:")) for name in fetched), fetched
    assert browser.execute_script("return !!document.getElementById('explore-sidebar')")
    browser.save_screenshot(str(screenshot_dir / "report_top.png"))


def test_sidebar_links_scroll_to_their_section(browser, report_page, screenshot_dir):
    from selenium.webdriver.common.by import By

    _open(browser, report_page[0])
    links = browser.find_elements(By.CSS_SELECTOR, "#explore-sidebar a[data-target]")
    sections = browser.execute_script("return Array.from(document.querySelectorAll('section[id]')).map(s => s.id)")
    targets = [link.get_attribute("data-target") for link in links]
    assert targets and set(targets) <= set(sections)
    assert "run" in targets and "card" in targets  # top-level sections are listed
    for link in links:
        target = link.get_attribute("data-target")
        browser.execute_script("window.scrollTo(0, 0)")
        link.click()
        top, scroll, max_scroll = browser.execute_script(
            "var t = document.getElementById(arguments[0]).getBoundingClientRect().top;"
            "return [t, window.scrollY, document.documentElement.scrollHeight - window.innerHeight];", target)
        # at the top of the window, unless the page ends before the section can reach the top
        assert -2 <= top <= 20 or abs(scroll - max_scroll) <= 2, (target, top, scroll, max_scroll)
        assert browser.execute_script("return location.hash") == f"#{target}"
    browser.save_screenshot(str(screenshot_dir / "report_after_sidebar_link.png"))
    assert _severe(browser) == []


def _value(text: str) -> float | None:
    """An independent reading of a cell: the leading number (unicode minus allowed), None for a dash."""
    m = NUMBER.match(text.replace("\u2212", "-").strip())
    return float(m.group(1)) if m else None


def test_sorting_reorders_rows_by_value(browser, report_page):
    """In each table with a numeric column and several rows: a click sorts ascending by value, a second click
    descending; every row stays (rows of class total or mean stay last)."""
    from selenium.webdriver.common.by import By

    _open(browser, report_page[0])
    checked = 0
    for table in browser.find_elements(By.CSS_SELECTOR, "table.explore-sortable"):
        heads = table.find_elements(By.CSS_SELECTOR, "thead th[data-explore-col]")
        rows = table.find_elements(By.CSS_SELECTOR, "tbody tr:not(.total):not(.mean)")
        if len(rows) < 3 or len(table.find_elements(By.CSS_SELECTOR, "thead tr")) != 1:
            continue
        for th in heads:
            col = int(th.get_attribute("data-explore-col"))
            cells = browser.execute_script(
                "return Array.from(arguments[0].tBodies[0].rows).filter(r => !r.classList.contains('total') &&"
                " !r.classList.contains('mean')).map(r => r.cells[arguments[1]] ? r.cells[arguments[1]].textContent"
                " : '')", table, col)
            values = [_value(c) for c in cells]
            if len({v for v in values if v is not None}) < 2 or values.count(None) > len(values) // 2:
                continue
            before = sorted(r.text for r in rows)
            for direction in ("ascending", "descending"):
                browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", th)
                th.click()
                assert th.get_attribute("aria-sort") == direction
                cells = browser.execute_script(
                    "return Array.from(arguments[0].tBodies[0].rows).map(r => [r.className, r.cells[arguments[1]] ?"
                    " r.cells[arguments[1]].textContent : ''])", table, col)
                body = [text for css, text in cells if "total" not in css and "mean" not in css]
                numbers = [v for v in map(_value, body) if v is not None]
                assert numbers == sorted(numbers, reverse=direction == "descending"), (direction, body)
                assert all(v is not None for v in map(_value, body[:len(numbers)]))  # missing values last
                pinned = [i for i, (css, _) in enumerate(cells) if "total" in css or "mean" in css]
                assert pinned == list(range(len(cells) - len(pinned), len(cells)))
            assert sorted(r.text for r in table.find_elements(By.CSS_SELECTOR, "tbody tr:not(.total):not(.mean)")) \
                == before
            checked += 1
            break
    assert checked >= 3


def test_sorting_rules_on_mixed_formats(browser, synthetic_page, screenshot_dir):
    """Percentages and "0.95 [0.90–0.98]" by the estimate, h:m:s as seconds, text naturally; dashes and n/a last in
    both directions; the mean row stays last."""
    from selenium.webdriver.common.by import By

    _open(browser, synthetic_page)
    table = browser.find_element(By.ID, "mixed")
    heads = table.find_elements(By.CSS_SELECTOR, "thead th")

    def order(col: int) -> list[str]:
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", heads[col])
        heads[col].click()
        return browser.execute_script("return Array.from(arguments[0].tBodies[0].rows).map(r =>"
                                      " r.cells[0].textContent)", table)

    assert order(0) == ["ensemble", "seed 1", "seed 2", "seed 10", "mean ± SD"]
    assert order(0) == ["seed 10", "seed 2", "seed 1", "ensemble", "mean ± SD"]
    assert order(1) == ["ensemble", "seed 10", "seed 1", "seed 2", "mean ± SD"]  # 9.5 < 97.1 < 100.0, dash last
    assert order(1) == ["seed 1", "seed 10", "ensemble", "seed 2", "mean ± SD"]
    assert order(2) == ["seed 1", "seed 2", "seed 10", "ensemble", "mean ± SD"]  # −0.25 < 0.5 < 0.95, n/a last
    assert order(3) == ["ensemble", "seed 2", "seed 10", "seed 1", "mean ± SD"]  # 7 s < 50 s < 65 s < 3600 s
    browser.save_screenshot(str(screenshot_dir / "synthetic_sorted.png"))
    assert _severe(browser) == []


def test_run_details_collapse_and_open_from_the_sidebar(browser, synthetic_page, screenshot_dir):
    """Run details the PDF keeps are open, the others (inside .html-only) closed; a sidebar link into a closed one
    opens it and scrolls to it."""
    from selenium.webdriver.common.by import By

    _open(browser, synthetic_page)
    state = browser.execute_script(
        "return Array.from(document.querySelectorAll('.run-detail')).map(e => [e.id, e.querySelector("
        "'details.explore-run').open, e.querySelector('summary').textContent])")
    assert state == [["run-kept", True, "seed 1 (in the PDF) (also in the PDF)"], ["run-left", False, "seed 2"]]
    assert not browser.find_element(By.ID, "left-text").is_displayed()
    browser.find_element(By.CSS_SELECTOR, "#explore-sidebar a[data-target='run-left']").click()
    assert browser.find_element(By.ID, "left-text").is_displayed()
    top = browser.execute_script("return document.getElementById('run-left').getBoundingClientRect().top")
    assert -2 <= top <= 20
    sub = browser.find_elements(By.CSS_SELECTOR, "#explore-sidebar li li a[data-target='two-a']")
    assert len(sub) == 1  # a nested section is listed under its parent
    browser.save_screenshot(str(screenshot_dir / "synthetic_details.png"))
    assert _severe(browser) == []


def _expected_files(results: Path, split_seed: int, seeds: list[int], dataset: str, true: str, pred: str) -> Counter:
    """The images of a confusion cell, independently from predictions.csv (one per run that puts them there)."""
    files = Counter()
    for seed in seeds:
        df = pd.read_csv(results / "splits" / str(split_seed) / "seeds" / str(seed) / dataset / "predictions.csv")
        hit = df[(df["label"] == true) & (df["prediction"] == pred)]
        files.update(p.split("/")[-1] for p in hit["path"])
    return files


def test_confusion_cells_show_their_images(browser, report_page, fake_split_seed, screenshot_dir):
    """Every non-zero cell of every confusion table opens as many tiles as its number, showing the files that
    predictions.csv puts in that cell (summed tables: every run's), with a thumbnail each."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    path, results = report_page
    _open(browser, path)
    tables = browser.find_elements(By.CSS_SELECTOR, "table.confusion[data-dataset]")
    assert tables
    opened = 0
    for table in tables:
        dataset, run = table.get_attribute("data-dataset"), table.get_attribute("data-run")
        seeds = list(SEEDS) if not run else [int(run.split()[-1])]
        cells = table.find_elements(By.CSS_SELECTOR, "td[data-true][data-pred]")
        for cell in cells:
            n = int(cell.text)
            assert ("explore-cell" in cell.get_attribute("class")) == (n > 0)
            if n == 0:
                continue
            browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", cell)
            cell.click()
            viewer = browser.find_element(By.ID, "explore-viewer")
            assert viewer.is_displayed()
            tiles = viewer.find_elements(By.CSS_SELECTOR, "figure.explore-tile")
            assert len(tiles) == n
            shown = Counter(t.find_element(By.CSS_SELECTOR, ".explore-file").text for t in tiles)
            assert shown == _expected_files(results, fake_split_seed, seeds, dataset, cell.get_attribute("data-true"),
                                            cell.get_attribute("data-pred"))
            assert all(t.find_element(By.TAG_NAME, "img").get_attribute("src").startswith("data:image/jpeg")
                       for t in tiles)
            assert not viewer.find_elements(By.CSS_SELECTOR, ".explore-warning")
            if opened == 0:
                browser.save_screenshot(str(screenshot_dir / "report_confusion_viewer.png"))
            opened += 1
            viewer.find_element(By.CSS_SELECTOR, "button.explore-close").send_keys(Keys.ENTER)
            assert not viewer.is_displayed()
    assert opened >= len(tables)
    assert _severe(browser) == []
