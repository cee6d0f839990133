"""An interactive results explorer in one self-contained HTML file.

:func:`write_explorer` turns the tables the analysis already computes into ``explorer.html``: per (original,
new) test-set pair, the scatter of every model (hover names, both Clopper-Pearson intervals), ``y = x``, the
fitted trend with its bootstrap band, the per-model prediction interval; a linear / probit / logit switch;
filters by source, model type and original accuracy; a search by model name that highlights the model; a
sortable per-model table; one tab per pair; a link back to REPORT.md.

The page is built from a Jinja2 template (``templates/explorer.html.j2``) with plotly.js -- the copy shipped
inside the ``plotly`` Python package -- and a little glue script (``templates/explorer.js``) inlined, so it
opens offline from disk; a Content-Security-Policy forbids every network request.

Input contract (DataFrames, as :mod:`generalization.analysis.trends` computes them; optional columns are
shown when present and left out when not):

``accuracies``
    one row per (source, model, test set): ``source, model, test_set, n, top1, top1_ci_low, top1_ci_high``;
    optional ``flag``, ``model_type``.
``per_model``
    one row per (original, new, source, model): ``original_test_set, new_test_set, source, model``; optional
    ``gap_ci_low, gap_ci_high, effective_robustness, predicted_new, predicted_new_low, predicted_new_high,
    extrapolated, prediction_scale, prediction_model_set, model_type``. Accuracies are taken from
    ``accuracies`` (every row must be there).
``fits``
    one row per (original, new, scale[, model set]): ``original, new, scale, slope, intercept``; optional
    ``n_models, r, slope_ci_low, slope_ci_high, fit_sources, model_set, band_level``.
``trend_fits``
    optional :class:`~generalization.analysis.trends.TrendFit` objects keyed by (original, new, scale) for
    the bootstrap bands (``fits`` alone has no band).

All numbers are embedded in percent; the page transforms them to the probit (``Phi^-1(p)``) or logit
(``log(p / (1 - p))``) scale itself, moving 0 and 100 % half a count inwards as the fits do
(:func:`generalization.analysis.trends.to_scale`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from ..files import DataError, atomic_write_text
from ..test_sets import TEST_SETS
from . import trends

__all__ = ["write_explorer", "explorer_data", "render_explorer", "plotly_js"]

#: digits kept in the page: accuracies to 1/1000 of a point (exact for n = 50,000), intervals to 1/100
_ACC_DIGITS, _CI_DIGITS = 3, 2
_BAND_POINTS = 50  # points kept of a bootstrap band


def plotly_js() -> str:
    """The plotly.js bundle that ships inside the ``plotly`` Python package (no network needed)."""
    try:
        return resources.files("plotly").joinpath("package_data/plotly.min.js").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as e:
        raise DataError("the results explorer needs the plotly package (pip install plotly)") from e


def _title(name: str) -> str:
    info = TEST_SETS.get(name)
    return info.title if info is not None else name


def _nums(values, digits: int) -> list[float | None]:
    """Rounded floats for JSON, NaN/None/pd.NA -> null."""
    if isinstance(values, pd.Series):
        values = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    a = np.round(np.asarray(values, dtype=float), digits)
    return [None if v != v else v for v in a.tolist()]


def _strings(values: pd.Series) -> np.ndarray:
    """Object array of str, missing values -> ''."""
    return values.astype(object).where(values.notna(), "").astype(str).to_numpy(dtype=object)


def _truthy(v) -> bool:
    """A flag cell: a bool, a number, or text as a CSV gives it back ("True", "false", "1", "")."""
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "yes")
    return not pd.isna(v) and bool(v)


def _deltas(index: list[int]) -> list[int | None]:
    """Row indices as differences from the previous present one (small numbers); -1 (absent) -> null."""
    out, prev = [], 0
    for i in index:
        if i < 0:
            out.append(None)
        else:
            out.append(i - prev)
            prev = i
    return out


def _fit_entry(row: dict, orig_pct: np.ndarray, trend_fit: trends.TrendFit | None) -> dict:
    scale = str(row["scale"])
    entry: dict = {"slope": float(row["slope"]), "intercept": float(row["intercept"])}
    for col in ("n_models", "r", "slope_ci_low", "slope_ci_high", "band_level", "n_bootstrap"):
        if col in row and pd.notna(row[col]):
            entry[col] = float(row[col])
    for col in ("fit_sources", "model_set"):
        if col in row and pd.notna(row[col]) and str(row[col]):
            entry[col] = str(row[col])
    lo, hi = (float(np.min(orig_pct)), float(np.max(orig_pct))) if len(orig_pct) else (0.05, 99.95)
    pad = 0.05 * (hi - lo)
    # a straight line on its own scale, which is the scale the page draws it on: its two ends suffice
    x = np.array([max(lo - pad, 0.05), min(hi + pad, 99.95)])
    y = trends.from_scale(entry["intercept"] + entry["slope"] * trends.to_scale(x, scale), scale)
    entry["line"] = {"x": _nums(x, 4), "y": _nums(y, 4)}
    if trend_fit is not None and trend_fit.band_x.size and trend_fit.n_bootstrap > 0:
        step = max(1, int(np.ceil(trend_fit.band_x.size / _BAND_POINTS)))
        keep = np.unique(np.r_[np.arange(0, trend_fit.band_x.size, step), trend_fit.band_x.size - 1])
        entry["band"] = {"x": _nums(trend_fit.band_x[keep], _ACC_DIGITS),
                         "low": _nums(trend_fit.band_low[keep], _ACC_DIGITS),
                         "high": _nums(trend_fit.band_high[keep], _ACC_DIGITS)}  # fmt: skip
    return entry


#: optional per-model columns: (per_model column, key in the page, digits)
_PER_MODEL_COLUMNS = [("gap_ci_low", "gl", _CI_DIGITS), ("gap_ci_high", "gh", _CI_DIGITS),
                      ("effective_robustness", "er", _CI_DIGITS), ("predicted_new", "p", _CI_DIGITS),
                      ("predicted_new_low", "pl", _CI_DIGITS), ("predicted_new_high", "ph", _CI_DIGITS)]  # fmt: skip


def explorer_data(
    accuracies: pd.DataFrame,
    per_model: pd.DataFrame,
    fits: pd.DataFrame,
    *,
    trend_fits: Mapping[tuple, trends.TrendFit] | None = None,
    report_link: str | None = "REPORT.md",
) -> dict:
    """The JSON-able payload the page embeds (see the module docstring for the input contract).

    ``acc`` holds every accuracy row once, as columns, sorted by (test set, source, model); the rows of test
    set ``j`` are ``test_sets[j].start`` .. ``start + count - 1`` and its ``n`` is ``test_sets[j].n`` where one
    ``n`` holds for the whole test set (otherwise ``acc.n`` lists it per row). Each pair's rows point into
    ``acc`` (``a``: the original test set's row, ``b``: the new one's, null if absent; both written as
    differences from the previous index) and add the per-model columns of ``per_model``.
    """
    need = ["source", "model", "test_set", "n", "top1", "top1_ci_low", "top1_ci_high"]
    missing = [c for c in need if c not in accuracies.columns]
    if missing:
        raise DataError(f"accuracy table: missing column(s) {', '.join(missing)}")
    need_pm = ["original_test_set", "new_test_set", "source", "model"]
    missing = [c for c in need_pm if not per_model.empty and c not in per_model.columns]
    if missing:
        raise DataError(f"per-model table: missing column(s) {', '.join(missing)}")

    acc = accuracies.sort_values(["test_set", "source", "model"], kind="stable").reset_index(drop=True)
    src, mod, ts = (_strings(acc[c]) for c in ("source", "model", "test_set"))
    row_of: dict[tuple[str, str, str], int] = {}
    for i, key in enumerate(zip(src, mod, ts, strict=True)):
        if key in row_of:
            raise DataError(f"accuracy table: ({key[0]}, {key[1]}, {key[2]}) appears twice")
        row_of[key] = i
    pm = per_model if not per_model.empty else pd.DataFrame(columns=need_pm)
    p_orig, p_new, p_src, p_mod = (_strings(pm[c]) for c in need_pm)

    # model type: per accuracy row, from either table (the store's metadata or the per-model table)
    if "model_type" in acc:
        types = _strings(acc["model_type"])
    elif "model_type" in pm:
        known = dict(zip(zip(p_src, p_mod, strict=True), _strings(pm["model_type"]), strict=True))
        types = np.array([known.get((s, m), "") for s, m in zip(src, mod, strict=True)], dtype=object)
    else:
        types = np.full(len(acc), "", dtype=object)
    flags = _strings(acc["flag"]) if "flag" in acc else np.full(len(acc), "", dtype=object)

    names = sorted(set(mod))
    sources = sorted(set(src))
    type_list = sorted(set(types) - {""})
    flag_list = [""] + sorted(set(flags) - {""})
    name_pos = {v: i for i, v in enumerate(names)}
    src_pos = {v: i for i, v in enumerate(sources)}
    n = acc["n"].to_numpy(dtype=np.int64)
    test_sets, uniform_n = [], True
    for t in dict.fromkeys(ts):
        rows = np.flatnonzero(ts == t)  # contiguous: the table is sorted by test set
        entry = {"name": t, "title": _title(t), "start": int(rows[0]), "count": len(rows)}
        if (n[rows] == n[rows[0]]).all():
            entry["n"] = int(n[rows[0]])
        else:
            uniform_n = False
        test_sets.append(entry)
    a_cols: dict = {
        "m": [name_pos[v] for v in mod],
        "s": [src_pos[v] for v in src],
        "top1": _nums(acc["top1"], _ACC_DIGITS),
        "lo": _nums(acc["top1_ci_low"], _CI_DIGITS),
        "hi": _nums(acc["top1_ci_high"], _CI_DIGITS),
    }
    if not uniform_n:
        a_cols["n"] = n.tolist()
    if len(flag_list) > 1:
        pos = {v: i for i, v in enumerate(flag_list)}
        a_cols["f"] = [pos[v] for v in flags]
    if type_list:
        pos = {v: i for i, v in enumerate(type_list)}
        a_cols["mt"] = [pos.get(v, -1) for v in types]
    data: dict = {"names": names, "sources": sources, "test_sets": test_sets, "types": type_list,
                  "flags": flag_list, "report_link": report_link, "acc": a_cols, "pairs": []}  # fmt: skip

    top1 = acc["top1"].to_numpy(dtype=float)
    numeric = {col: pd.to_numeric(pm[col], errors="coerce").to_numpy(dtype=float)
               for col, _, _ in _PER_MODEL_COLUMNS if col in pm}  # fmt: skip
    extrapolated = None
    if "extrapolated" in pm:
        extrapolated = np.array([int(_truthy(v)) for v in pm["extrapolated"]])
    pred_scale = _strings(pm["prediction_scale"]) if "prediction_scale" in pm else None
    pred_set = _strings(pm["prediction_model_set"]) if "prediction_model_set" in pm else None
    by_pair: dict[tuple[str, str], list[int]] = {}
    for i, key in enumerate(zip(p_orig, p_new, strict=True)):
        by_pair.setdefault(key, []).append(i)
    fit_rows: dict[tuple[str, str], list[dict]] = {}
    if fits is not None and not fits.empty:
        for row in fits.to_dict("records"):
            fit_rows.setdefault((str(row["original"]), str(row["new"])), []).append(row)
    trend_fits = trend_fits or {}
    for (original, new), members in by_pair.items():
        idx = np.array(sorted(members, key=lambda i: (p_src[i], p_mod[i])), dtype=np.int64)
        lost = [i for i in idx if (p_src[i], p_mod[i], original) not in row_of]
        if lost:
            raise DataError(f"per-model table: ({p_src[lost[0]]}, {p_mod[lost[0]]}) on {original} has no accuracy row")
        a = [row_of[(p_src[i], p_mod[i], original)] for i in idx]
        b = [row_of.get((p_src[i], p_mod[i], new), -1) for i in idx]
        rows = {"a": _deltas(a), "b": _deltas(b)}
        for col, key, digits in _PER_MODEL_COLUMNS:
            if col in numeric:
                rows[key] = _nums(numeric[col][idx], digits)
        if extrapolated is not None:
            rows["x"] = extrapolated[idx].tolist()
        pair_fits: dict[str, list] = {}
        for frow in fit_rows.get((original, new), []):
            scale = str(frow["scale"])
            tf = trend_fits.get((original, new, scale, frow.get("model_set")), trend_fits.get((original, new, scale)))
            if tf is not None and not np.isclose(tf.slope, float(frow["slope"])):
                tf = None  # a band of another fit (e.g. another model set) is not this line's band
            pair_fits.setdefault(scale, []).append(_fit_entry(frow, top1[a], tf))
        has_pi = "pl" in rows and "ph" in rows
        label = None
        if has_pi:
            # per_model.csv's predicted_new_low/high are a prediction interval once it has `extrapolated`
            label = "95 % prediction interval" if extrapolated is not None else "predicted_new interval"
            how = []
            for text, what in ((pred_scale, "trend"), (pred_set, "models")):
                values = sorted(set(text[idx]) - {""}) if text is not None else []
                if values:
                    how.append(f"{'/'.join(values)} {what}")
            if how:
                label += " (" + ", ".join(how) + ")"
        data["pairs"].append({
            "original": original, "new": new, "title": f"{_title(new)} vs {_title(original)}",
            "original_title": _title(original), "new_title": _title(new),
            "fits": pair_fits, "rows": rows,
            "prediction_label": label,
        })  # fmt: skip
    return data


def _json_for_script(obj) -> str:
    """JSON safe inside a <script> element: no '<', '>', '&' (so no '</script>'), no NaN."""
    text = json.dumps(obj, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))  # fmt: skip


def render_explorer(data: dict, *, title: str = "Results explorer") -> str:
    """The HTML page for a payload from :func:`explorer_data` (Jinja2 template, everything inlined)."""
    import jinja2
    from markupsafe import Markup

    templates = resources.files("generalization").joinpath("analysis/templates")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    template = env.from_string(templates.joinpath("explorer.html.j2").read_text(encoding="utf-8"))
    script = templates.joinpath("explorer.js").read_text(encoding="utf-8")
    libs = plotly_js()
    for code in (script, libs):
        if "</script" in code.lower():  # would end the inline script element early
            raise DataError("an inlined script contains '</script'")
    return template.render(
        title=title,
        report_link=data.get("report_link"),
        data_json=Markup(_json_for_script(data)),
        plotly_js=Markup(libs),
        explorer_js=Markup(script),
        n_models=len(data["names"]),
        n_rows=len(data["acc"]["m"]),
        n_pairs=len(data["pairs"]),
    )


def write_explorer(
    accuracies: pd.DataFrame,
    per_model: pd.DataFrame,
    fits: pd.DataFrame,
    out: str | os.PathLike,
    report_link: str | None = "REPORT.md",
    *,
    trend_fits: Mapping[tuple, trends.TrendFit] | None = None,
    title: str = "Do classifiers generalize? Results explorer",
) -> Path:
    """Write the explorer to ``out`` (atomically) and return its path.

    Parameters
    ----------
    accuracies, per_model, fits
        The accuracy table, the per-model table (:func:`trends.residuals`) and the fits table
        (:func:`trends.fit_trends`); see the module docstring for the columns used.
    out
        The HTML file to write, e.g. ``results/explorer.html``.
    report_link
        Link target for "the numbers in REPORT.md" (relative to ``out``), or None for no link.
    trend_fits
        The :class:`~generalization.analysis.trends.TrendFit` objects, for the bootstrap bands.
    """
    html = render_explorer(explorer_data(accuracies, per_model, fits, trend_fits=trend_fits, report_link=report_link),
                           title=title)  # fmt: skip
    return atomic_write_text(out, html)
