"""``artseg label`` in a real browser: headless Debian chromium driven by Selenium through chromedriver.

Label three of five fields by key presses, kill the server (SIGKILL), restart it on the same
labels file, check that the page resumes at the first unanswered field, go back and relabel,
finish, and read the result as ``artseg train`` does. Needs ``chromium`` and
``chromium-driver`` (Debian) and ``selenium`` (the ``test`` extra); .ci/run installs them. The
test fails, never skips, when they are missing.
"""

import queue
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from artseg.io import atomic_write_csv, read_image_manifest, write_mask, write_tiff

# Bounded waits, generous for a loaded 2-core CI machine.
SERVER_START_S = 90
PAGE_S = 30
SHAPE = (48, 64)
NAMES = ["f0.tif", "f1.tif", "f2.tif", "sub/f3.tif", "sub/f4.tif"]


def _browser_paths():
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.fail("the browser test needs Debian's chromium and chromedriver: "
                    "apt-get install -y chromium chromium-driver (see .ci/run)")
    return browser, driver


@pytest.fixture
def browser():
    binary, driver_path = _browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1000,800", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(PAGE_S)
    try:
        yield driver
    finally:
        driver.quit()


class LabelServer:
    """``python -m artseg label`` in a subprocess; ``url`` is the address it printed."""

    def __init__(self, *args):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "artseg", "label", *map(str, args), "--no-browser"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.lines = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.output = []
        self.url = self._wait_for_url()

    def _read(self):
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _wait_for_url(self):
        while True:
            try:
                line = self.lines.get(timeout=SERVER_START_S)
            except queue.Empty:
                self.stop()
                pytest.fail(f"artseg label printed no URL in {SERVER_START_S} s: {''.join(self.output)}")
            if line is None:
                pytest.fail(f"artseg label exited before serving: {''.join(self.output)}")
            self.output.append(line)
            found = re.search(r"http://127\.0\.0\.1:\d+/\?token=\S+", line)
            if found:
                return found.group(0)

    def wait(self, timeout):
        return self.process.wait(timeout=timeout)

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=PAGE_S)
        self.reader.join(timeout=PAGE_S)
        self.process.stdout.close()


@pytest.fixture
def servers():
    started = []

    def start(*args):
        server = LabelServer(*args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _fields(tmp_path):
    """Five fields (two in a subfolder) and an 'artseg predict' folder with masks for two of them."""
    images, predictions = tmp_path / "images", tmp_path / "predictions"
    rng = np.random.default_rng(0)
    for name in NAMES:
        write_tiff(images / name, rng.integers(500, 4000, size=SHAPE).astype(np.uint16))
    mask = np.zeros(SHAPE, dtype=bool)
    mask[10:20, 15:40] = True
    for name in ("f0", "sub/f3"):
        write_mask(predictions / f"{name}.png", mask)
    atomic_write_csv(pd.DataFrame({
        "image": ["f0.tif", "sub/f3.tif"], "p_artifact": [0.91, 0.77], "artifact_fraction": [0.08, 0.08],
        "n_objects": [1, 1], "contains_artifact": [1, 1],
    }), predictions / "predictions.csv")
    return images, predictions


def _body(driver):
    return driver.find_element(By.TAG_NAME, "body")


def _wait_ready(driver, index):
    """Wait until the page shows field ``index`` (or ``"done"``/``"stopped"``) and accepts keys."""
    def ready(d):
        body = _body(d)
        return body.get_attribute("data-ready") == "1" and body.get_attribute("data-index") == str(index)
    try:
        WebDriverWait(driver, PAGE_S, poll_frequency=0.05).until(ready)
    except TimeoutException:
        body = _body(driver)
        pytest.fail(f"page never showed field {index}: data-index={body.get_attribute('data-index')!r}, "
                    f"ready={body.get_attribute('data-ready')!r}, message={driver.find_element(By.ID, 'message').text!r}")


def _press(driver, key, then):
    _body(driver).send_keys(key)
    _wait_ready(driver, then)


def _labels(path):
    """The labels file read as ``artseg train`` reads it: field name -> label."""
    table = read_image_manifest(path, require_label=True)
    images = path.parent.resolve() / "images"
    return {Path(image).relative_to(images).as_posix(): int(label)
            for image, label in zip(table["image"], table["label"])}


def test_label_by_keys_kill_restart_and_finish(tmp_path, browser, servers):
    images, predictions = _fields(tmp_path)
    out = tmp_path / "labels.csv"
    arguments = ("--images", images, "--out", out, "--overlay", predictions)

    first = servers(*arguments)
    browser.get(first.url)
    _wait_ready(browser, 0)
    assert browser.find_element(By.ID, "name").text == "f0.tif"
    assert browser.find_element(By.ID, "overlay").is_displayed()  # the model's mask over f0
    assert "0.91" in browser.find_element(By.ID, "model").text
    shown = browser.find_element(By.ID, "image")
    assert (shown.get_property("naturalWidth"), shown.get_property("naturalHeight")) == (SHAPE[1], SHAPE[0])
    _press(browser, "a", 1)
    _press(browser, "c", 2)
    _press(browser, "s", 3)
    assert browser.find_element(By.ID, "progress").text.startswith("3 of 5 answered")

    first.process.kill()  # no goodbye: only what was saved after each key press survives
    first.wait(PAGE_S)
    assert _labels(out) == {"f0.tif": 1, "f1.tif": 0}
    assert pd.read_csv(tmp_path / "labels.skipped.csv")["image"].tolist() == ["images/f2.tif"]

    second = servers(*arguments)
    assert "3 already answered" in "".join(second.output)
    browser.get(second.url)
    _wait_ready(browser, 3)  # resumes at the first unanswered field
    assert browser.find_element(By.ID, "name").text == "sub/f3.tif"
    assert browser.find_element(By.ID, "progress").text.startswith("3 of 5 answered")
    overlay = browser.find_element(By.ID, "overlay")
    assert overlay.is_displayed()
    _body(browser).send_keys("o")
    assert not overlay.is_displayed()
    _body(browser).send_keys("o")
    assert overlay.is_displayed()

    _press(browser, "b", 2)  # back to the skipped field, and label it after all
    assert browser.find_element(By.ID, "current").text == "answered: skip"
    _press(browser, "a", 3)
    _press(browser, "c", 4)
    _press(browser, "a", "done")
    assert "All 5 fields answered: 3 artifact, 2 clean, 0 skipped" in browser.find_element(By.ID, "done").text

    assert _labels(out) == {"f0.tif": 1, "f1.tif": 0, "f2.tif": 1, "sub/f3.tif": 0, "sub/f4.tif": 1}
    assert pd.read_csv(tmp_path / "labels.skipped.csv").empty
    _press(browser, "q", "stopped")  # the page stops its server
    assert second.wait(PAGE_S) == 0
