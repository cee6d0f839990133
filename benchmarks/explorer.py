"""Size and time-to-interactive of the results explorer on synthetic tables as large as the published ones.

The full published tables: timm's ~1,550 models on ImageNet, ImageNetV2, ImageNet-ReaL, -Sketch, -A, -R (and
the -A/-R class-restricted "clean" originals), and imagenet-testbed's 338 models x 213 settings. This builds
accuracy / per-model / fits tables of that shape (random but plausible accuracies, every optional column the
explorer shows), writes ``explorer.html``, prints its size and, with ``--browser``, opens it in a fresh
headless Chromium and reports the time until it is interactive (the page sets ``window.explorerReady`` after
its first plot) and the renderer main thread's CPU time (Chrome's ``Performance.getMetrics``; on a busy
machine the wall time includes waiting for a core, the CPU time does not).

    .venv/bin/python benchmarks/explorer.py [--out /tmp/explorer-full.html] [--browser] [--repeats 3]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from generalization.analysis import explorer, trends
from generalization.metrics import accuracy_table_from_counts

TIMM_PAIRS = [("imagenet-val", "imagenetv2-matched-frequency"), ("imagenet-val", "imagenet-real"),
              ("imagenet-val", "imagenet-sketch"), ("imagenet-a-clean", "imagenet-a"),
              ("imagenet-r-clean", "imagenet-r")]  # fmt: skip
SIZES = {"imagenet-val": 50000, "imagenetv2-matched-frequency": 10000, "imagenet-real": 50000,
         "imagenet-sketch": 50889, "imagenet-a-clean": 10000, "imagenet-a": 7500, "imagenet-r-clean": 10000,
         "imagenet-r": 30000}  # fmt: skip
TYPES = ["standard", "more_data", "robustness_intervention", "other"]


def synthetic_tables(n_timm: int = 1550, n_testbed: int = 338, n_settings: int = 212, seed: int = 0,
                     n_bootstrap: int = 200):  # fmt: skip
    """(accuracies, per_model, fits, trend_fits) shaped like the full published timm and testbed tables."""
    rng = np.random.default_rng(seed)
    rows = []

    def add(source, models, test_set, n, acc):
        k = rng.binomial(n, np.clip(acc, 0.001, 0.999))
        rows.extend({"source": source, "model": m, "test_set": test_set, "n": n, "top1_correct": int(c)}
                    for m, c in zip(models, k, strict=True))  # fmt: skip

    def shifted(base, slope, shift):
        z = np.log(base / (1 - base))
        return 1 / (1 + np.exp(-(slope * z + shift + rng.normal(0, 0.15, len(z)))))

    timm = [f"timm_model_{i:04d}.variant_{i % 7}@{224 + 32 * (i % 4)}" for i in range(n_timm)]
    base = rng.uniform(0.45, 0.91, n_timm)
    add("timm", timm, "imagenet-val", SIZES["imagenet-val"], base)
    for o, n in TIMM_PAIRS:
        if o != "imagenet-val":
            add("timm", timm, o, SIZES[o], shifted(base, 1.0, 0.8))
        add("timm", timm, n, SIZES[n], shifted(base, rng.uniform(0.7, 1.3), rng.uniform(-1.5, 0.3)))
    testbed = [f"testbed_model_{i:03d}" for i in range(n_testbed)]
    tbase = rng.uniform(0.2, 0.9, n_testbed)
    add("testbed", testbed, "imagenet-val", 50000, tbase)
    settings = [f"testbed-setting-{j:03d}" for j in range(n_settings)]
    for s in settings:
        add("testbed", testbed, s, 10000, shifted(tbase, rng.uniform(0.6, 1.4), rng.uniform(-2.5, 0.2)))
    acc = accuracy_table_from_counts(pd.DataFrame(rows))
    acc["flag"] = ""
    mt = {m: TYPES[i % 4] for i, m in enumerate(timm + testbed)}
    acc["model_type"] = acc["model"].map(mt)

    fit_rows, trend_fits, per_model = [], {}, []
    for o, n in TIMM_PAIRS + [("imagenet-val", s) for s in settings]:
        p = trends.paired_accuracies(acc, o, n)
        p = p[p["source"] == ("timm" if n in SIZES else "testbed")]
        for scale in trends.SCALES:
            f = trends.fit_trend(p["orig"], p["new"], scale, n_bootstrap=n_bootstrap)
            trend_fits[(o, n, scale)] = f
            fit_rows.append({"original": o, "new": n, "scale": scale, "n_models": f.n_models, "model_set": "standard",
                             "slope": f.slope, "intercept": f.intercept, "r": f.r, "slope_ci_low": f.slope_ci_low,
                             "slope_ci_high": f.slope_ci_high, "band_level": 0.95, "n_bootstrap": n_bootstrap})  # fmt: skip
        f = trend_fits[(o, n, "logit")]
        z = trends.to_scale(p["orig"], "logit")
        resid = trends.to_scale(p["new"], "logit") - (f.intercept + f.slope * z)
        half = 1.96 * np.std(resid)
        p["predicted_new"] = f.predict(p["orig"])
        p["predicted_new_low"] = trends.from_scale(f.intercept + f.slope * z - half, "logit")
        p["predicted_new_high"] = trends.from_scale(f.intercept + f.slope * z + half, "logit")
        p["effective_robustness"] = p["new"] - p["predicted_new"]
        p["extrapolated"] = p["orig"] < 50
        per_model.append(p)
    return acc, pd.concat(per_model, ignore_index=True), pd.DataFrame(fit_rows), trend_fits


def time_to_interactive(html: Path, repeats: int = 3) -> list[dict]:
    """Open ``html`` in a fresh headless Chromium profile ``repeats`` times; wall and CPU time to interactive."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    out = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="explorer-chrome-") as profile:
            opts = webdriver.ChromeOptions()
            opts.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
            for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--window-size=1400,1000", f"--user-data-dir={profile}"):  # fmt: skip
                opts.add_argument(flag)
            d = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
            try:
                d.get("about:blank")
                time.sleep(1.0)  # let the browser finish starting; what is timed is the page
                d.execute_cdp_cmd("Performance.enable", {})
                m0 = {m["name"]: m["value"] for m in d.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]}
                d.get(html.resolve().as_uri())
                for _ in range(6000):
                    if d.execute_script("return window.explorerReady === true"):
                        break
                    time.sleep(0.01)
                m1 = {m["name"]: m["value"] for m in d.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]}
                ready = d.execute_script("return window.explorerReadyMs")
                out.append({"ready_ms": ready, "main_thread_cpu_ms": 1000 * (m1["ThreadTime"] - m0.get("ThreadTime", 0)),
                            "renderer_cpu_ms": 1000 * (m1["ProcessTime"] - m0.get("ProcessTime", 0))})  # fmt: skip
            finally:
                d.quit()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "explorer-full.html")
    ap.add_argument("--browser", action="store_true", help="also measure time to interactive in headless Chromium")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    t0 = time.perf_counter()
    acc, per_model, fits, trend_fits = synthetic_tables()
    t1 = time.perf_counter()
    path = explorer.write_explorer(acc, per_model, fits, args.out, "REPORT.md", trend_fits=trend_fits)
    t2 = time.perf_counter()
    print(f"{len(acc)} accuracy rows, {per_model['model'].nunique()} models, {len(per_model)} per-model rows, "
          f"{len(fits)} fits (tables {t1 - t0:.1f} s); explorer written in {t2 - t1:.1f} s: {path}, "
          f"{path.stat().st_size / 1e6:.2f} MB")  # fmt: skip
    if args.browser:
        for r in time_to_interactive(path, args.repeats):
            print(f"interactive after {r['ready_ms']:.0f} ms (renderer main thread CPU {r['main_thread_cpu_ms']:.0f} ms, "
                  f"renderer CPU {r['renderer_cpu_ms']:.0f} ms)")  # fmt: skip


if __name__ == "__main__":
    main()
