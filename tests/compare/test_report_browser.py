"""compare's report.html opened in a real browser: headless Chromium through selenium.

It renders (the grouped table's rows, the val-loss figure's traces, drawn by plotly), logs no
JavaScript error and fetches nothing from the network. Without Chromium, chromedriver or
selenium these tests skip, unless CHARGPT_REQUIRE_BROWSER=1 (CI sets it): then they fail.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from compare.test_report import MADE_AT, comparison, make_run, sweep

from chargpt.compare.report import write_report
from chargpt.runs.read import NOT_STARTED, Run

pytestmark = pytest.mark.browser

REQUIRE_BROWSER = "CHARGPT_REQUIRE_BROWSER"
LOCAL_SCHEMES = {"file", "data"}  # what the page may load: itself and inline data
DRAW_TIMEOUT_S = 15
# Every graph div: its title, the `meta` of each trace, and whether plotly drew it (its SVG).
FIGURES_JS = """
return Array.from(document.querySelectorAll(".plotly-graph-div")).map(function (gd) {
  var title = gd.layout && gd.layout.title;
  return {
    title: String((title && (title.text || title)) || ""),
    metas: (gd.data || []).map(function (trace) { return trace.meta || null; }),
    drawn: gd.querySelector(".main-svg") !== null,
  };
});
"""
# Each row of the grouped table (the page's first sortable table), as its cells' text.
GROUPED_ROWS_JS = """
var table = document.querySelector("table.sortable");
if (!table) return null;
return Array.from(table.tBodies[0].rows).map(function (row) {
  return Array.from(row.cells).map(function (cell) { return cell.textContent; });
});
"""


def unavailable(reason: str) -> None:
    """Skip, or fail where the browser is required (CI)."""
    if os.environ.get(REQUIRE_BROWSER) == "1":
        pytest.fail(f"{reason} ({REQUIRE_BROWSER}=1: the browser tests must run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """One headless Chromium for the module, quit after; its console and network logged."""
    try:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        unavailable("selenium is not installed (pip install -e '.[dev]')")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        tools = {"chromium": chromium, "chromedriver": driver_path}
        missing = " and ".join(name for name, path in tools.items() if path is None)
        unavailable(f"{missing} not on PATH (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        # A fetch fails at once rather than waiting on a network; the log still records it.
        "--host-resolver-rules=MAP * ~NOTFOUND",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    try:  # both paths given: selenium's driver manager, which would download, is not asked
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
    except WebDriverException as error:
        unavailable(f"Chromium could not be started: {error.msg}")
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@dataclass
class Visit:
    """What opening a page did: its console errors and the URLs it requested off the disk."""

    errors: list[str]
    fetched: list[str]


def visit(driver, page: Path) -> Visit:
    """Open `page` from a file:// URL, wait for plotly to draw every figure, and collect the
    console's SEVERE entries and every request whose scheme is not file: or data:."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("browser"), driver.get_log("performance")  # forget the previous page's
    driver.get(page.resolve().as_uri())
    WebDriverWait(driver, DRAW_TIMEOUT_S).until(
        lambda d: all(figure["drawn"] for figure in d.execute_script(FIGURES_JS))
    )
    errors = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    fetched = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            url = message["params"]["request"]["url"]
        elif message["method"] == "Network.webSocketCreated":
            url = message["params"]["url"]
        else:
            continue
        if urlsplit(url).scheme not in LOCAL_SCHEMES:
            fetched.append(url)
    return Visit(errors, fetched)


@dataclass
class Report:
    path: Path
    groups: int
    curves: int  # runs with a val curve: each has its own trace
    runs: int


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    """A 2-variant × 3-seed sweep, one seed failed (its curve still drawn), one more job not
    started, as `python -m chargpt.compare` writes its report."""
    root = tmp_path_factory.mktemp("sweep")
    runs = sweep(root, lrs=(0.002,))
    failed = runs[1]
    runs[1] = make_run(failed.path, 2, failed.settings, status="failed", error="CUDA OOM")
    pending = Run(
        path=root / "6",
        status=NOT_STARTED,
        settings={"seed": "4", "model.norm_position": "post", "optimizer.lr": "0.002"},
        partial=True,
        label="6",
    )
    found = comparison([*runs, pending])
    assert len(found.rows) == 2
    path = write_report(found, root, x="tokens", made_at=MADE_AT)
    curves = sum(1 for run in found.runs if run.val_curve)
    return Report(path, len(found.rows), curves, len(found.runs))


def test_the_report_renders_its_groups_and_curves_with_no_error_and_no_network(browser, report):
    seen = visit(browser, report.path)
    assert seen.errors == [], "the console shows JavaScript errors"
    assert seen.fetched == [], "the page fetched from the network"

    rows = browser.execute_script(GROUPED_ROWS_JS)
    assert rows is not None and len(rows) == report.groups
    statuses = sorted(row[-1] for row in rows)
    assert statuses == ["2 finished, 1 failed", "3 finished, 1 not started"]

    figures = browser.execute_script(FIGURES_JS)
    curves = [f for f in figures if "mean" in f["metas"] and "validation" in f["title"].lower()]
    assert len(curves) == 1, [figure["title"] for figure in figures]
    (curve,) = curves
    assert curve["drawn"]
    assert curve["metas"].count("mean") == report.groups
    assert curve["metas"].count("run") == report.curves == report.runs - 1  # not the pending job


def test_a_javascript_error_on_the_page_is_caught(browser, report, tmp_path):
    broken = tmp_path / "broken.html"
    page = report.path.read_text(encoding="utf-8")
    broken.write_text(
        page.replace("</body>", "<script>undefinedFunction()</script></body>"), encoding="utf-8"
    )
    seen = visit(browser, broken)
    assert any("undefinedFunction" in error for error in seen.errors), seen.errors


def test_a_request_to_the_network_is_caught(browser, report, tmp_path):
    online = tmp_path / "online.html"
    page = report.path.read_text(encoding="utf-8")
    online.write_text(
        page.replace("</body>", '<img src="http://example.com/x.png"></body>'), encoding="utf-8"
    )
    seen = visit(browser, online)
    assert seen.fetched == ["http://example.com/x.png"]


# Each sortable table's column, after a click on its heading: the cells' sort keys, in order.
SORTED_JS = """
var table = document.querySelectorAll("table.sortable")[arguments[0]], column = arguments[1];
table.tHead.rows[0].cells[column].click();
return Array.from(table.tBodies[0].rows).map(function (row) {
  var cell = row.cells[column];
  return [cell.getAttribute("data-sort"), cell.textContent];
});
"""
COLUMNS_JS = """
return Array.from(document.querySelectorAll("table.sortable")).map(function (table) {
  return table.tHead.rows[0].cells.length;
});
"""


def test_every_column_of_every_table_sorts_on_a_click(browser, report):
    """Numbers (durations in seconds) ascending, then the cells without one, as text."""
    visit(browser, report.path)
    for table, columns in enumerate(browser.execute_script(COLUMNS_JS)):
        for column in range(columns):
            cells = browser.execute_script(SORTED_JS, table, column)
            numbers = [float(key) for key, _ in cells if key is not None]
            texts = [text for key, text in cells if key is None]
            assert numbers == sorted(numbers), (table, column, cells)
            assert [key is None for key, _ in cells] == sorted(key is None for key, _ in cells)
            assert texts == sorted(texts, key=lambda text: text) or len(set(texts)) <= 1
