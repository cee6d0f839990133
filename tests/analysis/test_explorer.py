"""The results explorer: the data it embeds (checked against the raw accuracy table with numpy and scipy), that
it is one self-contained file, and that it works in a real browser (headless Chromium via selenium)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from generalization.analysis import explorer
from generalization.analysis import trends as analysis

ROOT = Path(__file__).resolve().parents[2]
ACCURACIES = ROOT / "results" / "accuracies.csv"
HOSTILE = "</script><img src=x onerror=\"window.pwned=1\">&amp;'evil"
PAIR = ("imagenet-val", "imagenetv2-matched-frequency")


def _tables(extra: pd.DataFrame | None = None, n_bootstrap: int = 50):
    raw = pd.read_csv(ACCURACIES)
    if extra is not None:
        raw = pd.concat([raw, extra], ignore_index=True)
    path = ACCURACIES
    if extra is not None:
        import tempfile

        path = Path(tempfile.mkdtemp(prefix="explorer-test-")) / "accuracies.csv"
        raw.to_csv(path, index=False)
    acc = analysis.read_accuracies(path)
    fits_df, fits = analysis.fit_trends(acc, n_bootstrap=n_bootstrap)
    return raw, acc, analysis.residuals(acc, fits), fits_df, fits


def _hostile_rows() -> pd.DataFrame:
    return pd.DataFrame({"source": ["mine", "mine"], "model": [HOSTILE, HOSTILE], "test_set": list(PAIR),
                         "n": [50000, 10000], "top1_correct": [38000, 6500], "flag": ["", ""]})  # fmt: skip


def _embedded(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="explorer-data">(.*?)</script>', html, re.S)
    assert m, "no embedded data"
    return json.loads(m.group(1))


def _decode(data: dict) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """The page's compact encoding undone, written here independently of the page's script."""
    a = data["acc"]
    t = np.empty(len(a["m"]), dtype=object)
    n = np.zeros(len(a["m"]), dtype=np.int64)
    for ts in data["test_sets"]:
        t[ts["start"]: ts["start"] + ts["count"]] = ts["name"]
        if "n" in ts:
            n[ts["start"]: ts["start"] + ts["count"]] = ts["n"]
    if "n" in a:
        n = np.array(a["n"])
    acc = pd.DataFrame({"source": [data["sources"][i] for i in a["s"]], "model": [data["names"][i] for i in a["m"]],
                        "test_set": t, "n": n, "top1": a["top1"], "lo": a["lo"], "hi": a["hi"]})  # fmt: skip
    pairs = []
    for p in data["pairs"]:
        idx = {}
        for key in ("a", "b"):
            prev, out = 0, []
            for d in p["rows"][key]:
                if d is None:
                    out.append(-1)
                else:
                    prev += d
                    out.append(prev)
            idx[key] = out
        rows = pd.DataFrame(idx)
        for k, v in p["rows"].items():
            if k not in ("a", "b"):
                rows[k] = v
        rows["source"] = acc["source"].to_numpy()[rows["a"]]
        rows["model"] = acc["model"].to_numpy()[rows["a"]]
        rows.attrs.update(original=p["original"], new=p["new"], fits=p["fits"])
        pairs.append(rows)
    return acc, pairs


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    raw, acc, per_model, fits_df, fits = _tables(_hostile_rows())
    out = tmp_path_factory.mktemp("explorer") / "explorer.html"
    explorer.write_explorer(acc, per_model, fits_df, out, "REPORT.md", trend_fits=fits)
    return raw, per_model, fits_df, out


# ------------------------------------------------------------------------------------------ no browser


def test_every_accuracy_row_is_embedded_with_its_numbers(built):
    raw, per_model, fits_df, out = built
    acc, pairs = _decode(_embedded(out.read_text(encoding="utf-8")))
    # every model of accuracies.csv is findable (the search runs over these names), every row is there once
    assert set(acc["model"]) == set(raw["model"].astype(str))
    assert len(acc) == len(raw)
    merged = raw[["source", "model", "test_set", "n", "top1_correct"]].merge(
        acc, on=["source", "model", "test_set"], how="left", validate="one_to_one")
    assert merged["top1"].notna().all()
    assert (merged["n_x"] == merged["n_y"]).all()
    k, n = merged["top1_correct"].to_numpy(float), merged["n_x"].to_numpy(float)
    np.testing.assert_allclose(merged["top1"], np.round(100 * k / n, 3), atol=1e-9)
    # Clopper-Pearson from the beta quantiles, written out here
    lo = np.where(k > 0, stats.beta.ppf(0.025, k, n - k + 1), 0.0)
    hi = np.where(k < n, stats.beta.ppf(0.975, k + 1, n - k), 1.0)
    np.testing.assert_allclose(merged["lo"], np.round(100 * lo, 2), atol=1e-9)
    np.testing.assert_allclose(merged["hi"], np.round(100 * hi, 2), atol=1e-9)

    # one tab per (original, new) pair, holding exactly the per-model table's rows
    assert [(p.attrs["original"], p.attrs["new"]) for p in pairs] == list(
        dict.fromkeys(zip(per_model["original_test_set"], per_model["new_test_set"], strict=True)))
    for p in pairs:
        o, nw = p.attrs["original"], p.attrs["new"]
        pm = per_model[(per_model["original_test_set"] == o) & (per_model["new_test_set"] == nw)]
        pm = pm.sort_values(["source", "model"]).reset_index(drop=True)
        assert list(zip(p["source"], p["model"], strict=True)) == list(zip(pm["source"], pm["model"], strict=True))
        assert (acc["test_set"].to_numpy()[p["a"]] == o).all()
        has_new = p["b"].to_numpy() >= 0
        assert (has_new == pm["new"].notna().to_numpy()).all()
        assert (acc["test_set"].to_numpy()[p["b"][has_new]] == nw).all()
        np.testing.assert_allclose(p["gl"].astype(float), np.round(pm["gap_ci_low"], 2), atol=1e-9)
        np.testing.assert_allclose(p["er"].astype(float), np.round(pm["effective_robustness"], 2), atol=1e-9)
        np.testing.assert_allclose(p["pl"].astype(float), np.round(pm["predicted_new_low"], 2), atol=1e-9)


def test_trend_lines_are_the_fits(built):
    _, _, fits_df, out = built
    _, pairs = _decode(_embedded(out.read_text(encoding="utf-8")))
    back = {"linear": lambda z: z, "probit": lambda z: 100 * stats.norm.cdf(z), "logit": lambda z: 100 / (1 + np.exp(-z))}
    fwd = {"linear": lambda x: x, "probit": lambda x: stats.norm.ppf(x / 100), "logit": lambda x: np.log(x / (100 - x))}
    checked = 0
    for p in pairs:
        for scale, entries in p.attrs["fits"].items():
            (f,) = entries
            row = fits_df[(fits_df["original"] == p.attrs["original"]) & (fits_df["new"] == p.attrs["new"])
                          & (fits_df["scale"] == scale)].iloc[0]  # fmt: skip
            assert f["slope"] == pytest.approx(row["slope"]) and f["n_models"] == row["n_models"]
            x = np.array(f["line"]["x"])
            np.testing.assert_allclose(f["line"]["y"], back[scale](row["intercept"] + row["slope"] * fwd[scale](x)), atol=1e-3)
            assert len(f["band"]["x"]) >= 20 and (np.array(f["band"]["low"]) <= np.array(f["band"]["high"])).all()
            checked += 1
    assert checked == len(fits_df)


def test_one_self_contained_file_and_hostile_names_stay_data(built):
    _, _, _, out = built
    html = out.read_text(encoding="utf-8")
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert not re.search(r"<script[^>]+src=|<link\b|<iframe\b", html, re.I)
    assert html.count("<script") == 3  # the data, plotly.js, the glue
    assert HOSTILE not in html and "<img src=x" not in html  # only the JSON-escaped form is in the page
    assert HOSTILE in _embedded(html)["names"]
    assert 'href="REPORT.md"' in html


def test_optional_columns_may_be_missing(tmp_path):
    _, acc, per_model, fits_df, _ = _tables()
    bare_pm = per_model[["original_test_set", "new_test_set", "source", "model"]]
    bare_acc = acc.drop(columns=["flag"])
    out = explorer.write_explorer(bare_acc, bare_pm, fits_df[["original", "new", "scale", "slope", "intercept"]],
                                  tmp_path / "e.html", None)  # fmt: skip
    data = _embedded(out.read_text(encoding="utf-8"))
    assert set(data["pairs"][0]["rows"]) == {"a", "b"} and data["pairs"][0]["prediction_label"] is None
    assert "band" not in data["pairs"][0]["fits"]["linear"][0] and data["report_link"] is None

    # an `extrapolated` column read back from a CSV is text; it marks the interval as a prediction interval
    pm = per_model.copy()
    pm["extrapolated"] = np.where(pm["orig"] < 50, "True", "False")
    pm["prediction_scale"], pm["prediction_model_set"] = "probit", "paper"
    data = _embedded(explorer.write_explorer(acc, pm, fits_df, tmp_path / "f.html").read_text(encoding="utf-8"))
    _, pairs = _decode(data)
    expect = pm[(pm["original_test_set"] == PAIR[0]) & (pm["new_test_set"] == PAIR[1])].sort_values(["source", "model"])
    assert pairs[0]["x"].tolist() == (expect["orig"] < 50).astype(int).tolist() and (pairs[0]["x"] == 1).any()
    assert data["pairs"][0]["prediction_label"] == "95 % prediction interval (probit trend, paper models)"


def test_analyze_html_flag_asks_for_the_explorer(monkeypatch, tmp_path):
    from generalization import cli
    from generalization.analysis import report

    seen = []
    monkeypatch.setattr(report, "write_results", lambda table, out, **kw: seen.append(kw["html"]) or [])
    for extra in ([], ["--html"]):
        assert cli.main(["analyze", "--accuracies", str(ACCURACIES), "--out", str(tmp_path), *extra]) == 0
    assert seen == [False, True]


@pytest.mark.slow
def test_analyze_html_end_to_end(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "generalization", "analyze", "--accuracies", str(ACCURACIES),
                        "--out", str(tmp_path), "--n-bootstrap", "20", "--html"],
                       capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert str(tmp_path / "explorer.html") in r.stdout.splitlines()
    assert set(_embedded((tmp_path / "explorer.html").read_text(encoding="utf-8"))["names"]) == set(
        pd.read_csv(ACCURACIES)["model"].astype(str))


# ------------------------------------------------------------------------------------- headless Chromium


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        webdriver = None
    if not chromium or not driver_path or webdriver is None:
        msg = "headless Chromium test needs Debian chromium + chromium-driver and selenium"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1300,1000",
                 f"--user-data-dir={tmp_path_factory.mktemp('chrome-profile')}"):  # fmt: skip
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(driver_path), options=opts)
    d.set_page_load_timeout(60)
    yield d
    d.quit()


def _wait(d, script: str, *args, timeout: float = 30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = d.execute_script(script, *args)
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {script}")


def _search(d, text: str) -> None:
    from selenium.webdriver.common.by import By

    box = d.find_element(By.ID, "search")
    box.clear()
    box.send_keys(text)
    _wait(d, "return document.querySelector('#search').value === arguments[0] && "
             "document.querySelectorAll('#models tbody tr.hit').length > 0", text)  # fmt: skip
    # wait until the plot holds the search trace for this query too
    _wait(d, "const t = document.getElementById('plot').data.find(t => t.meta === 'search');"
             "return t && t.name === 'search: ' + arguments[0]", text.lower())  # fmt: skip


def test_explorer_in_chromium(browser, built):
    from selenium.webdriver.common.by import By

    raw, _, _, out = built
    d = browser
    d.get(out.as_uri())
    _wait(d, "return window.explorerReady === true", timeout=60)
    severe = lambda: [e for e in d.get_log("browser") if e["level"] == "SEVERE"]  # noqa: E731
    assert severe() == []
    tabs = d.find_elements(By.CSS_SELECTOR, "[role=tab]")
    assert tabs[0].get_attribute("aria-selected") == "true" and "MatchedFrequency" in tabs[0].text

    # switch to probit: the axes and every point move to Phi^-1 of the accuracy
    d.find_element(By.CSS_SELECTOR, "input[name=scale][value=probit]").click()
    _wait(d, "return document.getElementById('plot').layout.xaxis.title.text.includes('probit')")
    model = "fbresnet152"
    d.execute_script("document.getElementById('search').value = ''")
    _search(d, model)
    x, y, names = d.execute_script(
        "const t = document.getElementById('plot').data.find(t => t.meta === 'search'); return [t.x, t.y, t.customdata]")
    assert names == [model]
    r = raw[raw["model"] == model].set_index("test_set")
    expect_x = stats.norm.ppf(r.loc[PAIR[0], "top1_correct"] / r.loc[PAIR[0], "n"])
    expect_y = stats.norm.ppf(r.loc[PAIR[1], "top1_correct"] / r.loc[PAIR[1], "n"])
    assert x[0] == pytest.approx(expect_x, abs=1e-4) and y[0] == pytest.approx(expect_y, abs=1e-4)
    # ... and its table row says the same, with the Clopper-Pearson interval
    col = {th.get_attribute("data-key"): i for i, th in enumerate(d.find_elements(By.CSS_SELECTOR, "#models th"))}
    cells = [c.text for c in d.find_elements(By.CSS_SELECTOR, "#models tbody tr.hit td")]
    k, n = r.loc[PAIR[0], "top1_correct"], r.loc[PAIR[0], "n"]
    lo, hi = stats.beta.ppf(0.025, k, n - k + 1), stats.beta.ppf(0.975, k + 1, n - k)
    assert cells[col["name"]] == model and cells[col["source"]] == "imagenetv2-release"
    assert cells[col["orig"]] == f"{100 * k / n:.2f} [{100 * lo:.2f}, {100 * hi:.2f}]"
    gap = 100 * k / n - 100 * r.loc[PAIR[1], "top1_correct"] / r.loc[PAIR[1], "n"]
    assert cells[col["gap"]].startswith(f"{gap:.2f} [")

    # a hostile name is text everywhere: in the table, in the hover label, and nothing ran
    _search(d, "onerror")
    cell = d.find_element(By.CSS_SELECTOR, "#models tbody tr.hit td")
    assert cell.text == HOSTILE and cell.get_attribute("textContent") == HOSTILE
    d.execute_script("const gd = document.getElementById('plot');"
                     "Plotly.Fx.hover(gd, [{curveNumber: gd.data.findIndex(t => t.meta === 'search'), pointNumber: 0}]);")
    label = _wait(d, "const h = document.querySelector('.hoverlayer .hovertext'); return h && h.textContent")
    assert HOSTILE in label
    assert d.execute_script("return window.pwned === undefined && !document.querySelector('img[src=x]')")

    # sort by gap (click twice: descending, then ascending), and filter a source out
    d.find_element(By.ID, "search").clear()
    d.execute_script("document.getElementById('search').dispatchEvent(new Event('input'))")
    _wait(d, "return document.querySelectorAll('#models tbody tr.hit').length === 0")
    header = d.find_element(By.CSS_SELECTOR, "#models th[data-key=gap]")
    header.click()
    _wait(d, "return document.querySelector('#models th[data-key=gap]').getAttribute('aria-sort') === 'descending'")
    gaps = d.execute_script("return [...document.querySelectorAll('#models tbody tr')].map("
                            "r => parseFloat(r.children[arguments[0]].textContent)).filter(v => !isNaN(v))", col["gap"])
    assert len(gaps) > 50 and gaps == sorted(gaps, reverse=True)
    d.find_element(By.CSS_SELECTOR, "#source-filter input[value=timm]").click()
    _wait(d, "return ![...document.querySelectorAll('#models tbody tr')].some("
             "r => r.children[arguments[0]].textContent === 'timm')", col["source"])
    shown = d.execute_script("return document.getElementById('plot').data.filter(t => t.customdata)"
                             ".flatMap(t => t.customdata)")
    assert shown and not set(shown) & set(raw.loc[raw["source"] == "timm", "model"])
    assert severe() == []
