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
