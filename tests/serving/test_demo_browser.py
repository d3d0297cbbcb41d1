"""The demo page at `/` in a real headless browser (Debian's Chromium, driven by Selenium):
a person types a text, clicks Generate, and reads the output and the attention heat map.

Not in the default run (it needs `apt-get install chromium chromium-driver`):
`pytest -m browser tests/serving/test_demo_browser.py`.
"""

import os

import pytest
from server_helpers import Server

pytestmark = pytest.mark.browser

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture
def browser():
    if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
        pytest.fail(f"the browser test needs {CHROMIUM} and {DRIVER}: apt-get install "
                    f"chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # This machine's network is closed: Chromium's background connections only add noise.
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def test_a_person_types_and_sees_the_output_and_heat_map(tiny_exports, tmp_path, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    model, root = tiny_exports
    srv = Server(["--model", f"onnx={root / 'onnx'}", "--model",
                  f"litert={root / 'litert'}"], tmp_path / "server.log")
    try:
        browser.get(f"http://127.0.0.1:{srv.port}/")
        wait = WebDriverWait(browser, 30)
        wait.until(lambda d: len(Select(d.find_element(By.ID, "model")).options) == 2)
        Select(browser.find_element(By.ID, "model")).select_by_value("onnx")
        Select(browser.find_element(By.ID, "strategy")).select_by_value("beam")
        browser.find_element(By.ID, "text").send_keys("¿Dónde está la estación de tren?")
        browser.find_element(By.ID, "go").click()
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#heatmap table")))

        shown = browser.find_element(By.ID, "output").text
        expected = model.translate(["¿Dónde está la estación de tren?"], strategy="beam",
                                   beam_size=2, length_penalty=0.6, coverage_penalty=0.0)[0]
        assert shown == expected.strip()
        head = [th.text for th in browser.find_elements(By.CSS_SELECTOR,
                                                         "#heatmap thead th")][1:]
        rows = browser.find_elements(By.CSS_SELECTOR, "#heatmap tbody tr")
        assert head[-1] == "</s>" and len(head) == int(
            (model.encode_texts(["¿Dónde está la estación de tren?"]).numpy() != 0).sum())
        assert rows and all(len(r.find_elements(By.TAG_NAME, "td")) == len(head) for r in rows)

        # An error is shown on the page, not swallowed: the LiteRT export has no beam search.
        Select(browser.find_element(By.ID, "model")).select_by_value("litert")
        strategies = [o.get_attribute("value") for o in
                      Select(browser.find_element(By.ID, "strategy")).options]
        assert strategies == ["greedy"]
        browser.find_element(By.ID, "text").clear()
        browser.find_element(By.ID, "go").click()
        wait.until(lambda d: d.find_element(By.ID, "error").text)
        assert "texts[0] is empty" in browser.find_element(By.ID, "error").text
    finally:
        srv.stop()
