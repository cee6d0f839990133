"""Labeling tasks: structure, determinism, escaping, and the task page in headless Chromium (standalone and as
an MTurk HTMLQuestion posting to a local stand-in for MTurk), its output ingested by the annotation readers."""

from __future__ import annotations

import base64
import http.server
import json
import os
import shutil
import threading
import urllib.parse
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from generalization.sampler import annotations as an
from generalization.sampler import frequencies as fq
from generalization.sampler import tasks as tk

HOSTILE = '</script><script>window.pwned=1</script><img src=x onerror="window.pwned=2">"\'&${x}'


def _tables(n_per_class=(100, 30, 5)):
    classes = ["cat", "dog", "fox"]
    cand = pd.DataFrame(
        [(f"{c}_{i:03d}", c) for c, n in zip(classes, n_per_class, strict=True) for i in range(n)],
        columns=["image_id", "class"],
    )
    pos = pd.DataFrame(
        [(f"val_{c}_{i}", c) for c in classes for i in range(6)], columns=["image_id", "class"]
    )
    return cand, pos


def test_tasks_have_42_candidates_and_six_controls():
    cand, pos = _tables()
    t = tk.make_tasks(cand, pos, seed=3, similar_classes={"cat": ["dog"], "dog": ["fox", "cat"]})
    sizes = t.groupby("task_id").size()
    per_class = t.groupby("task_id")["class"].first()
    # cat: 100 -> 3 tasks (last topped up), dog: 30 -> 1 short task, fox: 5 -> 1 short task
    assert per_class.value_counts().to_dict() == {"cat": 3, "dog": 1, "fox": 1}
    assert sizes[per_class == "cat"].tolist() == [48, 48, 48]
    assert sizes[per_class == "dog"].tolist() == [36] and sizes[per_class == "fox"].tolist() == [11]
    roles = t.groupby(["task_id", "role"]).size().unstack()
    assert (roles["positive"] == 3).all() and (roles["negative"] == 3).all()
    assert set(t.loc[(t["class"] == "cat") & (t["role"] == "candidate"), "image_id"]) == set(
        cand.loc[cand["class"] == "cat", "image_id"]
    )  # every candidate in some task
    pos_rows = t[t["role"] == "positive"]
    assert (pos_rows["image_class"] == pos_rows["class"]).all()
    neg = t[t["role"] == "negative"]
    assert set(neg.loc[neg["class"] == "cat", "image_class"]) == {"dog"}  # the similar class
    assert set(neg.loc[neg["class"] == "dog", "image_class"]) <= {"fox", "cat"}
    assert not t.duplicated(["task_id", "image_id"]).any()
    assert (t.groupby("task_id")["position"].apply(lambda s: sorted(s) == list(range(len(s))))).all()
    # seeded: same seed, same tasks; another seed, another shuffle
    assert t.equals(tk.make_tasks(cand, pos, seed=3, similar_classes={"cat": ["dog"], "dog": ["fox", "cat"]}))
    assert not t.equals(
        tk.make_tasks(cand, pos, seed=4, similar_classes={"cat": ["dog"], "dog": ["fox", "cat"]})
    )


def test_page_escapes_hostile_names_and_hides_roles(tmp_path):
    cand, pos = _tables((42, 10, 10))
    t = tk.make_tasks(cand, pos, seed=0)
    info = {"cat": (HOSTILE, HOSTILE + " definition")}
    written = tk.write_tasks(t, tmp_path, info)
    page = (tmp_path / "pages" / "task-000000.html").read_text()
    assert "window.pwned" not in page and "onerror" not in page and "positive" not in page
    template = (tmp_path / "mturk_template.html").read_text()
    assert template.count("${task_b64}") == 1
    batch = pd.read_csv(tmp_path / "mturk_batch_input.csv", dtype=str)
    payload = json.loads(base64.b64decode(batch["task_b64"].iloc[0]))
    assert payload["class_name"] == HOSTILE and "role" not in json.dumps(payload)
    assert len(written) == 3 + t["task_id"].nunique()


# ------------------------------------------------------------------------------- headless Chromium


def _driver(tmp_path):
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
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chrome-profile'}",
    ):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(driver_path), options=opts)


def _images(tmp_path, tasks):
    rng = np.random.default_rng(0)
    img_dir = tmp_path / "img"
    img_dir.mkdir()
    for im in tasks["image_id"].unique():
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(img_dir / f"{im}.png")


@pytest.fixture
def browser(tmp_path):
    d = _driver(tmp_path)
    d.set_page_load_timeout(30)
    yield d
    d.quit()


def test_standalone_page_in_chromium(browser, tmp_path):
    from selenium.webdriver.common.by import By

    cand, pos = _tables((42, 10, 10))
    t = tk.make_tasks(cand, pos, seed=1, url_template="../../img/{image_id}.png")
    _images(tmp_path, t)
    tk.write_tasks(t, tmp_path / "out", {"cat": (HOSTILE, "a small <b>domesticated</b> felid")})
    browser.get((tmp_path / "out" / "pages" / "task-000000.html").as_uri())
    assert browser.find_element(By.ID, "class-name").text == HOSTILE  # shown as text, not markup
    assert browser.find_element(By.ID, "class-definition").text == "a small <b>domesticated</b> felid"
    assert browser.execute_script("return window.pwned === undefined")
    tiles = browser.find_elements(By.CSS_SELECTOR, ".tile")
    assert len(tiles) == 48
    from selenium.webdriver.support.ui import WebDriverWait

    js = "return Array.from(document.images).filter(i => i.complete && i.naturalWidth === 32).length"
    WebDriverWait(browser, 15).until(lambda d: d.execute_script(js) == 48)  # every image decoded
    for k in (0, 5, 7, 7, 30):  # 7 twice: selected, then unselected
        tiles[k].click()
    assert browser.find_element(By.ID, "count").text == "3"
    browser.find_element(By.ID, "submit-button").click()
    assert "enter your name" in browser.find_element(By.ID, "error").text  # worker id required
    browser.find_element(By.ID, "worker-id").send_keys("alice")
    browser.find_element(By.ID, "submit-button").click()
    record = browser.find_element(By.ID, "record").text
    (tmp_path / "rec.jsonl").write_text(record + "\n")
    ann, problems = an.load_annotations(tmp_path / "rec.jsonl", tasks=t)  # format detected
    shown = t[t["task_id"] == "task-000000"].sort_values("position")
    want = set(shown["image_id"].iloc[[0, 5, 30]])
    assert len(problems) == 0 and len(ann) == 48
    assert set(ann.loc[ann["selected"], "image_id"]) == want
    assert ann["worker_id"].unique().tolist() == ["alice"]
    assert ann["role"].tolist() == shown["role"].tolist()  # the task table restores the control roles


class _FakeMTurk(http.server.BaseHTTPRequestHandler):
    page = b""
    posted: list = []

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write(self.page)

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        type(self).posted.append((self.path, urllib.parse.parse_qs(body)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"<html><body>thanks</body></html>")

    def log_message(self, *args):
        pass


def test_mturk_mode_in_chromium(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    cand, pos = _tables((42, 10, 10))
    rng = np.random.default_rng(1)
    t = tk.make_tasks(cand, pos, seed=2)
    # inline images, as an MTurk task would use https URLs
    buf = __import__("io").BytesIO()
    Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(buf, format="PNG")
    t["url"] = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    tk.write_tasks(t, tmp_path / "out", {"cat": ("cat", HOSTILE)}, pages=False)
    batch = pd.read_csv(tmp_path / "out" / "mturk_batch_input.csv", dtype=str)
    row = batch.iloc[0]
    # what MTurk does with the template: substitute ${task_b64} from the batch row
    template = (tmp_path / "out" / "mturk_template.html").read_text()
    _FakeMTurk.page = template.replace("${task_b64}", row["task_b64"]).encode()
    _FakeMTurk.posted = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _FakeMTurk)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        browser.get(f"{base}/task?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=H1")
        assert browser.find_element(By.ID, "submit-button").get_attribute("disabled") == "true"  # preview
        browser.get(
            f"{base}/task?assignmentId=A1&hitId=H1&workerId=W7&turkSubmitTo={urllib.parse.quote(base)}"
        )
        assert not browser.find_element(By.ID, "worker-box").is_displayed()
        assert browser.find_element(By.ID, "class-definition").text == HOSTILE
        tiles = browser.find_elements(By.CSS_SELECTOR, ".tile")
        for k in (1, 2, 40):
            tiles[k].click()
        browser.find_element(By.ID, "submit-button").click()
        WebDriverWait(browser, 15).until(lambda d: len(_FakeMTurk.posted) == 1)
    finally:
        server.shutdown()
    path, fields = _FakeMTurk.posted[0]
    assert path == "/mturk/externalSubmit" and fields["assignmentId"] == ["A1"]
    # MTurk turns the posted fields into Answer.* columns of the batch results
    results = pd.DataFrame(
        [
            {
                "HITId": "H1",
                "AssignmentId": "A1",
                "WorkerId": "W7",
                "AssignmentStatus": "Submitted",
                "Input.task_id": row["task_id"],
                "Input.task_b64": row["task_b64"],
                "Answer.selected": fields["selected"][0],
                "Answer.task_id": fields["task_id"][0],
            }
        ]
    )
    results.to_csv(tmp_path / "results.csv", index=False)
    ann, problems = an.load_annotations(tmp_path / "results.csv", tasks=tmp_path / "out" / "tasks.csv")
    shown = t[t["task_id"] == row["task_id"]].sort_values("position")
    assert len(problems) == 0
    assert set(ann.loc[ann["selected"], "image_id"]) == set(shown["image_id"].iloc[[1, 2, 40]])
    q = fq.worker_quality(ann)
    assert q["num_positive"].tolist() == [3] and q["num_negative"].tolist() == [3]


def test_template_is_package_data():
    assert Path(tk.__file__).with_name("templates").joinpath("task.html").is_file()
    assert "${task_b64}" in tk.mturk_template()


def test_tasks_cli(tmp_path):
    from generalization.cli import main

    cand, pos = _tables((50, 42, 3))
    cand.to_csv(tmp_path / "cand.csv", index=False)
    pos.to_csv(tmp_path / "pos.csv", index=False)
    pd.DataFrame({"class": ["cat"], "name": ["house cat"], "definition": ["a small felid"]}).to_csv(
        tmp_path / "info.csv", index=False
    )
    (tmp_path / "similar.json").write_text(json.dumps({"cat": ["dog"]}))
    assert (
        main(
            [
                "tasks",
                "--candidates",
                str(tmp_path / "cand.csv"),
                "--positives",
                str(tmp_path / "pos.csv"),
                "--class-info",
                str(tmp_path / "info.csv"),
                "--similar",
                str(tmp_path / "similar.json"),
                "--url-template",
                "https://example.org/{image_id}.jpg",
                "--seed",
                "5",
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    t = pd.read_csv(tmp_path / "out" / "tasks.csv", dtype=str)
    assert t["task_id"].nunique() == 4 and t["url"].str.startswith("https://example.org/").all()
    batch = pd.read_csv(tmp_path / "out" / "mturk_batch_input.csv", dtype=str)
    p = json.loads(base64.b64decode(batch["task_b64"].iloc[0]))
    assert p["class_name"] == "house cat" and p["definition"] == "a small felid"
    assert len(list((tmp_path / "out" / "pages").glob("*.html"))) == 4
