"""report.html in a real browser: headless Chromium (Debian's ``chromium`` package) driven by selenium through
Debian's ``chromedriver`` (``chromium-driver``); no browser is downloaded. A page of 300 queries x 10 rows loads
without console errors, the first query's rows are there and shaded in two colours, only the first sections
are open (the rest are laid out when opened), and the page states its size."""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

import pytest

from rise_exp.report.page import OPEN_QUERIES, write_run_page

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="no Chromium installed: apt-get install chromium chromium-driver (.ci/run installs them)",
)
QUERIES, ROWS, TOKENS = 300, 10, 40
WORDS = "howdy beep boop space whales photon the a of event horizon leonardo painted who river".split()


def big_run(root: Path, seed: int = 0) -> Path:
    """An attribute run dir whose explain.jsonl has 300 queries x 10 rows x 40 tokens of random shares."""
    rng = random.Random(seed)
    root.mkdir(parents=True)
    (root / "config.yaml").write_text("task: {name: howdy}\nmethod: {name: rise}\nmodel: {name: tiny-pythia}\n")
    (root / "metrics.json").write_text(json.dumps({"auprc@10": 0.88, "p@10": 0.77}))
    (root / "chance.json").write_text(json.dumps({"draws": 20, "auprc@10": 0.18, "auprc@10_std": 0.04}))

    def tokens(n: int) -> list:
        return [[f" {rng.choice(WORDS)}", None if i == 0 else rng.gauss(0, 0.01)] for i in range(n)]

    with open(root / "explain.jsonl", "w") as f:
        for q in range(QUERIES):
            rows = [
                {"rank": r + 1, "id": f"train-{q}-{r}", "label": int(r < 3), "score": 0.3 - 0.01 * r, "explained": 0.3}
                | {"tokens": tokens(TOKENS), "query_tokens": tokens(8)}
                for r in range(ROWS)
            ]
            line = {"query_id": f"q{q}", "query": "howdy! who painted it?", "method": "rise", "available": True}
            f.write(json.dumps(line | {"unit": "token", "positive": "backdoored", "rows": rows}) + "\n")
    return root


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is missing: pip install -e '.[dev]'")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1400",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(300)
    yield driver
    driver.quit()


def rgb(css: str) -> tuple[float, ...]:
    return tuple(float(x) for x in re.findall(r"[\d.]+", css))


def test_a_big_page_renders_shaded_rows_without_console_errors(browser, tmp_path):
    from selenium.webdriver.common.by import By

    page = write_run_page(big_run(tmp_path / "run"))
    browser.get(page.as_uri())
    assert browser.execute_script("return document.readyState") == "complete"
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert not errors, errors

    sections = browser.find_elements(By.CSS_SELECTOR, "details.q")
    assert len(sections) == QUERIES
    assert [s.get_attribute("open") is not None for s in sections].count(True) == OPEN_QUERIES
    rows = sections[0].find_elements(By.CSS_SELECTOR, "li.row")
    assert len(rows) == ROWS and all(r.is_displayed() for r in rows)
    assert "train-0-0" in rows[0].text and "backdoored" in rows[0].text
    # tokens shaded in two colours: orange (red > blue) for raising shares, blue for lowering ones
    pos = rows[0].find_elements(By.CSS_SELECTOR, ".tokens span[class^=p]")
    neg = rows[0].find_elements(By.CSS_SELECTOR, ".tokens span[class^=n]")
    assert pos and neg
    r, g, b, a = rgb(pos[0].value_of_css_property("background-color"))
    assert r > b and a > 0
    r, g, b, a = rgb(neg[0].value_of_css_property("background-color"))
    assert b > r and a > 0

    # a closed section is not shown until it is opened
    last_rows = sections[-1].find_elements(By.CSS_SELECTOR, "li.row")
    assert last_rows and not last_rows[0].is_displayed()
    sections[-1].find_element(By.TAG_NAME, "summary").click()
    assert last_rows[0].is_displayed()

    stated = re.search(r"this page is ([\d,]+) KB", browser.find_element(By.TAG_NAME, "body").text)
    assert stated and abs(int(stated.group(1).replace(",", "")) - page.stat().st_size / 1024) <= 1
    shot = tmp_path / "page.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 20_000
