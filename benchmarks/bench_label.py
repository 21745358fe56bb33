"""Labelling rate of ``artseg label``: key press to next field ready, in headless chromium, and the answer round trip.

Serves synthetic fields (1224x904 and 2556x2156) with ``python -m artseg label``, drives the page
with Selenium and Debian's chromium/chromedriver, presses the answer keys back to back (and
with a 1 s look per field), and times ``POST /api/answer`` in a 1,000-field session. Run from
the repository root (files go to benchmarks/out/label):

    python benchmarks/bench_label.py

A person's rate is bounded by looking at each field (about 1-2 s), not by these numbers.
"""
import json, re, statistics, subprocess, sys, threading, time, urllib.request
from pathlib import Path
import numpy as np
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from artseg.io import write_tiff

ROOT = Path(__file__).resolve().parent / "out" / "label"

def make_fields(folder, n, shape, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    base = 2000 + 300 * np.sin(xx / 97.0) * np.cos(yy / 131.0)
    for i in range(n):
        p = folder / f"f{i:04d}.tif"
        if not p.exists():
            write_tiff(p, (base + rng.normal(0, 60, shape)).astype(np.uint16))

def start(images, out):
    proc = subprocess.Popen([sys.executable, "-m", "artseg", "label", "--images", str(images), "--out", str(out), "--no-browser"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        m = re.search(r"http://127\.0\.0\.1:\d+/\?token=\S+", line)
        if m:
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return proc, m.group(0)
    raise SystemExit("no url")

JS = """
const [n, pause, done] = arguments; const times = []; let k = 0;
function next() {
  if (k === n) return done(times);
  const prev = document.body.dataset.index; const t0 = performance.now();
  const obs = new MutationObserver(() => { const b = document.body;
    if (b.dataset.ready === "1" && b.dataset.index !== prev) { obs.disconnect(); times.push(performance.now() - t0); k++; setTimeout(next, pause); } });
  obs.observe(document.body, {attributes: true});
  document.dispatchEvent(new KeyboardEvent("keydown", {key: k % 2 ? "a" : "c"}));
}
next();
"""

def browser():
    o = webdriver.ChromeOptions(); o.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        o.add_argument(a)
    d = webdriver.Chrome(options=o, service=Service("/usr/bin/chromedriver")); d.set_script_timeout(600); return d

def wait_ready(d):
    for _ in range(600):
        if d.execute_script("return document.body.dataset.ready") == "1": return
        time.sleep(0.05)

def browser_rate(shape, n, pause_ms):
    images = ROOT / f"img_{shape[0]}x{shape[1]}"; images.mkdir(exist_ok=True)
    make_fields(images, n + 1, shape)
    out = ROOT / f"labels_{shape[0]}_{pause_ms}.csv"; out.unlink(missing_ok=True)
    proc, url = start(images, out)
    d = browser()
    try:
        d.get(url); wait_ready(d)
        t = time.perf_counter(); times = d.execute_async_script(JS, n, pause_ms); wall = time.perf_counter() - t
    finally:
        d.quit(); proc.kill(); proc.wait()
    return times, wall

def roundtrip(n_fields, n_answers):
    images = ROOT / "tiny"; images.mkdir(exist_ok=True)
    make_fields(images, n_fields, (8, 8))
    out = ROOT / "labels_tiny.csv"; out.unlink(missing_ok=True)
    proc, url = start(images, out)
    base, token = url.split("/?token=")
    times = []
    try:
        for i in range(n_answers):
            body = json.dumps({"index": i, "answer": "artifact" if i % 2 else "clean"}).encode()
            t = time.perf_counter()
            with urllib.request.urlopen(urllib.request.Request(f"{base}/api/answer?token={token}", data=body), timeout=10) as r:
                r.read()
            times.append((time.perf_counter() - t) * 1000)
    finally:
        proc.kill(); proc.wait()
    return times

def summary(ms):
    ms = sorted(ms); return f"median {statistics.median(ms):.0f} ms, p90 {ms[int(0.9*len(ms))]:.0f} ms, max {ms[-1]:.0f} ms"

if __name__ == "__main__":
    import torch
    from artseg.hardware import cpu_capability, cpu_model_name
    ROOT.mkdir(parents=True, exist_ok=True)
    print(f"CPU: {cpu_model_name()}, capability {cpu_capability()}, torch threads {torch.get_num_threads()}")
    rt = roundtrip(1000, 200)
    print(f"answer round trip (1000-field session, urllib, CSV rewritten each time): {summary(rt)}")
    for shape, n in (((904, 1224), 40), ((2156, 2556), 20)):
        times, wall = browser_rate(shape, n, 0)
        print(f"{shape[1]}x{shape[0]} keys back to back: {wall / n:.3f} s/field wall; key->next field ready {summary(times)}")
        times, wall = browser_rate(shape, min(n, 15), 1000)
        print(f"{shape[1]}x{shape[0]} with 1 s look per field (prefetch has time): key->next field ready {summary(times)}")
