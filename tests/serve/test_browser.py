"""The web page in a real headless Chromium: type a query, read the ranked labels, add a label and find it.

Runs in CI (``.ci/run`` installs Debian's chromium and chromium-driver); skipped only without a Chromium.
Set ``VIXML_SCREENSHOT=path.png`` to keep the screenshot (the README's is made this way).
"""

from __future__ import annotations

import os
import shutil
import threading
import time

import pytest

from support_browser import chromium
from support_data import label_word
from support_serve import N_LABELS
from support_server import free_port
from vixml.inference import Predictor
from vixml.serve import ServeSettings, create_app


class _InThreadServer:
    """uvicorn serving an app on a loopback port from a thread of this process."""

    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=30)


def _wait(condition, timeout: float = 30.0, what: str = "the page"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_page_predicts_adds_a_label_and_finds_it(tmp_path, prime_run):
    from selenium.webdriver.common.by import By

    run = shutil.copytree(prime_run, tmp_path / "run")
    predictor = Predictor.load(run, device="cpu")
    query = f"{label_word(5)} {label_word(10)} pack"
    want = predictor.predict([query], k=10)
    driver = chromium()
    try:
        with _InThreadServer(create_app(predictor, ServeSettings(run))) as server:
            driver.get(server.url + "/")
            _wait(lambda: "labels" in driver.find_element(By.ID, "run-info").text, what="/info")
            box = driver.find_element(By.ID, "query")
            box.send_keys(query)
            driver.find_element(By.ID, "predict").click()

            def rows():
                items = driver.find_elements(By.CSS_SELECTOR, "#results li")
                return items if len(items) == 10 else None

            items = _wait(rows, what="the results")
            assert [int(li.get_attribute("data-label-id")) for li in items] == want.indices[0].tolist()
            assert [li.find_element(By.CLASS_NAME, "label-text").text for li in items] == want.texts[0]
            shown = [float(li.find_element(By.CLASS_NAME, "score").text) for li in items]
            assert shown == pytest.approx(want.scores[0].tolist(), abs=1e-3)
            driver.save_screenshot(str(tmp_path / "results.png"))

            driver.find_element(By.ID, "new-label").send_keys("zuzu item")
            driver.find_element(By.ID, "add-label").click()
            status = _wait(lambda: driver.find_element(By.ID, "add-status").text, what="the add status")
            assert f"label #{N_LABELS}" in status, status
            k = driver.find_element(By.ID, "k")
            k.clear()
            k.send_keys(str(N_LABELS + 1))
            box.clear()
            box.send_keys("zuzu item")
            driver.find_element(By.ID, "predict").click()
            found = _wait(
                lambda: driver.find_elements(By.CSS_SELECTOR, f"#results li[data-label-id='{N_LABELS}']"),
                what="the added label",
            )
            assert found[0].find_element(By.CLASS_NAME, "label-text").text == "zuzu item"
            assert found[0].find_elements(By.CLASS_NAME, "added")
            assert driver.find_element(By.ID, "report-link").get_attribute("href").endswith("/report")
            driver.save_screenshot(str(tmp_path / "added.png"))
            assert (tmp_path / "added.png").stat().st_size > 10_000
            if os.environ.get("VIXML_SCREENSHOT"):
                driver.save_screenshot(os.environ["VIXML_SCREENSHOT"])
            logs = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            assert not logs, logs
    finally:
        driver.quit()


_GEOMETRY = """
const width = document.documentElement.clientWidth;
const name = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className ? '.' + e.className : '');
const outside = [...document.querySelectorAll('body *')].filter((e) => {
  const r = e.getBoundingClientRect();
  return r.width > 0 && (r.right > width + 0.5 || r.left < -0.5 || r.width > width);
}).map(name);
const spilled = [...document.querySelectorAll('#results .bar')].filter((bar) => {
  const b = bar.getBoundingClientRect(), t = bar.querySelector('.score').getBoundingClientRect();
  return t.left < b.left - 0.5 || t.right > b.right + 0.5 || t.top < b.top - 0.5 || t.bottom > b.bottom + 0.5;
}).map((bar) => bar.textContent);
return {width, scrollWidth: document.documentElement.scrollWidth, outside, spilled,
        rows: document.querySelectorAll('#results li').length};
"""

# results no run gives, to try the layout: an unbreakable 300-character text, a long id, extreme scores
_EXTREME = """
showResults({labels: [0, 1, 2, 3], ids: ['uitoolkit::' + 'x'.repeat(120), '7', 'a/b', '3'],
  texts: ['w'.repeat(300), 'a label', null, 'short'], scores: [-123456.789, 99999.5, 0.5, -0.25]});
"""


@pytest.mark.slow
def test_page_fits_1280_px_asks_before_hiding_and_undoes_by_own_id(tmp_path, id_run):
    """At 1280 px: no element wider than the viewport, every score inside its bar (real and extreme results);
    a hide asks first (cancel keeps the label), then hides by the catalogue id, and undo shows it again."""
    from selenium.webdriver.common.by import By

    from support_serve import LABEL_IDS

    run = shutil.copytree(id_run, tmp_path / "run")
    predictor = Predictor.load(run, device="cpu")
    query = f"{label_word(5)} {label_word(10)} pack"
    want = predictor.predict([query], k=10).records()[0]
    driver = chromium()
    try:
        driver.set_window_size(1280, 1000)
        with _InThreadServer(create_app(predictor, ServeSettings(run))) as server:
            driver.get(server.url + "/")
            _wait(lambda: "labels" in driver.find_element(By.ID, "run-info").text, what="/info")
            assert driver.execute_script("return window.innerWidth") == 1280
            driver.find_element(By.ID, "query").send_keys(query)
            driver.find_element(By.ID, "predict").click()
            items = _wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#results li"), what="the results")
            assert [li.get_attribute("data-id") for li in items] == want["ids"]
            assert [li.find_element(By.CLASS_NAME, "label-id").text for li in items] == [f"#{i}" for i in want["ids"]]
            geometry = driver.execute_script(_GEOMETRY)
            assert geometry["rows"] == 10 and not geometry["outside"] and not geometry["spilled"], geometry
            assert geometry["scrollWidth"] <= geometry["width"], geometry

            target = items[0]
            key = target.get_attribute("data-id")
            assert key in LABEL_IDS
            target.find_element(By.CLASS_NAME, "hide").click()
            alert = driver.switch_to.alert
            assert key in alert.text and "undo" in alert.text
            alert.dismiss()  # cancelled: nothing hidden
            assert not predictor.labels.overlay.hidden
            target.find_element(By.CLASS_NAME, "hide").click()
            driver.switch_to.alert.accept()
            undo = _wait(lambda: driver.find_elements(By.ID, "undo"), what="the undo button")[0]
            assert predictor.labels.overlay.hidden == {LABEL_IDS.index(key)}
            assert not driver.find_elements(By.CSS_SELECTOR, f"#results li[data-id='{key}']")
            undo.click()
            _wait(lambda: driver.find_elements(By.CSS_SELECTOR, f"#results li[data-id='{key}']"), what="the undo")
            assert not predictor.labels.overlay.hidden
            assert [h["edit"] for h in predictor.labels.overlay.history] == ["hide", "unhide"]

            driver.execute_script(_EXTREME)
            geometry = driver.execute_script(_GEOMETRY)
            assert geometry["rows"] == 4 and not geometry["outside"] and not geometry["spilled"], geometry
            assert geometry["scrollWidth"] <= geometry["width"], geometry
            driver.save_screenshot(str(tmp_path / "extreme.png"))
            logs = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            assert not logs, logs
    finally:
        driver.quit()
