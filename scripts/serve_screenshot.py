"""Make the README's screenshot of the web page (docs/serve-screenshot.png) on the demo data with MiniLM.

    python scripts/serve_screenshot.py [docs/serve-screenshot.png]

Builds the zero-epoch MiniLM run of ``benchmarks/bench_serve.py`` (the pretrained encoder on the bundled
WordNet data), serves it on a loopback port, and in headless Chromium types a query, adds a label and
predicts again, then saves the screenshot. Needs Debian's chromium and chromium-driver.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "serve"), str(ROOT / "benchmarks")]


def main(out: Path) -> None:
    from selenium.webdriver.common.by import By
    from test_browser import _InThreadServer, _wait

    from bench_serve import build_run
    from support_browser import chromium
    from vixml.inference import Predictor
    from vixml.serve import ServeSettings, create_app

    with tempfile.TemporaryDirectory() as tmp:
        run, _ = build_run(Path(tmp))
        predictor = Predictor.load(run, device="cpu")
        driver = chromium()
        driver.set_window_size(1100, 900)
        try:
            with _InThreadServer(create_app(predictor, ServeSettings(run))) as server:
                driver.get(server.url + "/")
                _wait(lambda: "labels" in driver.find_element(By.ID, "run-info").text)
                driver.find_element(By.ID, "new-label").send_keys("espresso machine: an appliance that brews coffee")
                driver.find_element(By.ID, "add-label").click()
                _wait(lambda: "added" in driver.find_element(By.ID, "add-status").text)
                k = driver.find_element(By.ID, "k")
                k.clear()
                k.send_keys("8")
                driver.find_element(By.ID, "query").send_keys("cappuccino: equal parts of espresso and steamed milk")
                driver.find_element(By.ID, "predict").click()
                _wait(lambda: len(driver.find_elements(By.CSS_SELECTOR, "#results li")) == 8)
                time.sleep(0.3)
                out.parent.mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(out))
        finally:
            driver.quit()
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "serve-screenshot.png")
