"""Predict accuracy on a new test set without its labels: agreement on the line (Baek et al. 2022).

Baek, Jiang, Raghunathan and Kolter ("Agreement-on-the-line: predicting the performance of neural networks
under distribution shift", NeurIPS 2022) observed that when the accuracies of many models on an original and a
shifted test set lie on a line (on probit scale), the *agreement* of pairs of models (the share of images on
which their top-1 predictions are equal) lies on a line too, with almost the same slope and intercept. Agreement
needs no labels, so the line can be fitted on the new set's unlabeled images and each model's new-set accuracy
read off from its original accuracy.

What this module does, in order (:func:`agreement_on_the_line`):

1. **Models.** Every model with top-1 predictions on both sets. Two data-driven exclusions, neither reading the
   new set's labels: a model whose original top-1 is at most twice chance (its agreements are noise), and a
   model whose agreement with the others *on the new set* is far below the agreement line (median residual
   of its pairs more than ``defect_z`` robust standard deviations below the models' median): the signature of
   new-set predictions that are misaligned or broken, e.g. the ImageNetV2 release's ``fv_16k``.
2. **Pairs.** All unordered pairs of the models when there are at most ``max_pairs`` of them (2,211 for 67
   models), otherwise a seeded uniform sample of ``max_pairs`` pairs: the work is bounded by
   ``max_pairs x (N_original + N_new)`` comparisons.
3. **Agreement line.** Ordinary least squares of ``scale(agreement on new)`` on ``scale(agreement on
   original)`` over the pairs (probit by default; fractions of 0 or 1 moved half a count inwards).
4. **Prediction.** ``"aline-s"``: each model's new-set accuracy is the agreement line evaluated at its
   original accuracy. ``"aline-d"`` (the default, Baek et al.'s ALine-D): for every pair,
   ``(z_i + z_j) / 2 = scale(agr_new_ij) + slope * ((x_i + x_j) / 2 - scale(agr_orig_ij))`` with ``x`` the
   original accuracies on the scale, solved for all new-set accuracies ``z`` by least squares; it uses only
   the line's slope, and each model's own agreements.
5. **Interval** (``level``, default 95 %), on the scale:
   ``prediction +- q * sqrt(v_line + s^2 + v_binom + offset_sd^2)`` where ``v_line`` is the variance of the
   prediction over a seeded bootstrap over models (pairs among the resampled models, weighted by
   multiplicity), ``s`` is the residual standard deviation of the agreement points about their line (taken as
   the spread of models about the accuracy line), ``v_binom`` the binomial variance of an accuracy measured on
   the new set's ``N`` images, and ``offset_sd`` the SD of a systematic offset between the agreement line and
   the (unknown) accuracy line, which no label-free statistic reveals on the new set: by default the offset
   seen on five labelled shifts (:data:`DEFAULT_OFFSET_SD`). The validation measures how often it covers the
   truth, each set's interval built with the offset of the *other* sets.
6. **Warnings** when the agreement and accuracy lines are not expected to coincide or the prediction is
   weak: agreement line R^2 below ``min_r2`` (Baek et al.: when agreement is not linearly correlated, accuracy
   is not either), too few models or pairs, excluded models, predictions far outside the range of the
   agreement points.

The new set's labels are never an input: :func:`agreement_on_the_line` takes the new set's top-1 predictions
only, and :func:`predict_unlabeled` reads the new set's records' predictions arrays, never their counts or the
store's labels, except to fill ``actual_new_top1`` afterwards (and only when the store holds labels for it).
For a new set the store cannot hold (it has no labels yet), pass a folder of ``<model>.npy`` prediction
arrays (:func:`read_prediction_folder`).

Its validation against labels (where the new set's labels exist), the REPORT.md section and the figure are in
:mod:`generalization.analysis.agreement_validation`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np
import pandas as pd
from scipy import stats

from ..files import DataError, atomic_write_json, atomic_write_text, csv_text, load_npy
from ..store.records import PredictionStore
from ..test_sets import get_info
from .trends import from_scale, to_scale

__all__ = [
    "PREDICTION_COLUMNS",
    "METHODS",
    "AgreementResult",
    "select_pairs",
    "pairwise_agreement",
    "agreement_on_the_line",
    "predict_unlabeled",
    "read_prediction_folder",
    "write_predictions",
]

#: the columns of ``predictions.csv`` (percent; ``actual_new_top1`` empty where the new set has no labels)
PREDICTION_COLUMNS = ["model", "original_top1", "predicted_new_top1", "predicted_low", "predicted_high",
                      "actual_new_top1"]
METHODS = ("aline-d", "aline-s")
DEFAULT_MAX_PAIRS = 5000
#: SD of the systematic offset between the agreement line and the accuracy line, on each scale: the root mean
#: square of the mean prediction error (ALine-D, on the scale) over the five labelled shifts of
#: ``results/label-free/validation.csv`` (ImageNetV2 x 3, CIFAR-10.1 v4, v6: +0.055, -0.007, -0.026, +0.055,
#: +0.055 on probit scale; +0.084, -0.013, -0.043, +0.104, +0.105 on logit scale). No label-free statistic
#: reveals the offset on a new set, so the interval carries the offset seen on other shifts; the validation
#: uses, for each set, the value from the *other* sets only.
DEFAULT_OFFSET_SD = {"probit": 0.044, "logit": 0.079}


@dataclass
class AgreementResult:
    """What :func:`agreement_on_the_line` found.

    ``table`` has :data:`PREDICTION_COLUMNS` (``actual_new_top1`` NaN: the method never sees labels);
    ``pairs`` one row per pair used (counts and fractions on both sets); ``fit`` the agreement line and
    settings; ``excluded`` model -> reason; ``warnings`` sentences for people.
    """

    table: pd.DataFrame
    pairs: pd.DataFrame
    fit: dict[str, Any]
    excluded: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------- pairs


def select_pairs(n_models: int, max_pairs: int = DEFAULT_MAX_PAIRS, seed: int = 0) -> np.ndarray:
    """The model pairs ``(i, j)``, ``i < j``, sorted: all of them, or a seeded sample of ``max_pairs``.

    Parameters
    ----------
    n_models : int
        Number of models.
    max_pairs : int
        Upper bound on the number of pairs; all ``n (n - 1) / 2`` pairs are taken when they fit.
    seed : int
        Seed of the uniform sample without replacement (used only when there are too many pairs).

    Returns
    -------
    numpy.ndarray
        ``K x 2`` int array, rows sorted.
    """
    if max_pairs < 1:
        raise ValueError(f"max_pairs must be positive, got {max_pairs}")
    i, j = np.triu_indices(n_models, 1)
    if len(i) > max_pairs:
        pick = np.sort(np.random.default_rng(seed).choice(len(i), size=max_pairs, replace=False))
        i, j = i[pick], j[pick]
    return np.stack([i, j], axis=1).astype(np.int64)


def pairwise_agreement(top1: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """For each pair of rows of ``top1`` (models x images), on how many images their predictions are equal.

    Parameters
    ----------
    top1 : numpy.ndarray
        ``M x N`` integer array of top-1 class indices.
    pairs : numpy.ndarray
        ``K x 2`` row indices, e.g. from :func:`select_pairs`.

    Returns
    -------
    numpy.ndarray
        ``K`` int64 counts (divide by ``N`` for the agreement fraction).
    """
    top1 = np.asarray(top1)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    out = np.zeros(len(pairs), dtype=np.int64)
    # one vectorised comparison per first model: M passes over the array instead of K
    for a in np.unique(pairs[:, 0]):
        rows = np.flatnonzero(pairs[:, 0] == a)
        out[rows] = (top1[pairs[rows, 1]] == top1[a]).sum(axis=1)
    return out


# ------------------------------------------------------------------------------------------- fitting


def _wls_line(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> tuple[float, float]:
    """Weighted least-squares slope and intercept of y on x."""
    w = np.ones_like(x) if w is None else w
    xm, ym = np.average(x, weights=w), np.average(y, weights=w)
    sxx = np.sum(w * (x - xm) ** 2)
    if sxx <= 0:
        raise DataError("agreement line: the pairs' original agreements are all equal; no line can be fitted")
    slope = float(np.sum(w * (x - xm) * (y - ym)) / sxx)
    return slope, float(ym - slope * xm)


def _aline_d(x_orig: np.ndarray, a_orig: np.ndarray, a_new: np.ndarray, pairs: np.ndarray, slope: float,
             n_models: int, w: np.ndarray | None = None) -> np.ndarray:
    """ALine-D: least-squares new-set accuracies (on the scale) from every pair's equation."""
    w = np.ones(len(pairs)) if w is None else w
    rhs = a_new + slope * ((x_orig[pairs[:, 0]] + x_orig[pairs[:, 1]]) / 2 - a_orig)
    # normal equations of the 0.5/0.5 design, built with bincount (M x M, cheap for any number of pairs)
    i, j = pairs[:, 0], pairs[:, 1]
    ata = np.zeros((n_models, n_models))
    np.add.at(ata, (i, i), 0.25 * w)
    np.add.at(ata, (j, j), 0.25 * w)
    np.add.at(ata, (i, j), 0.25 * w)
    np.add.at(ata, (j, i), 0.25 * w)
    atb = 0.5 * (np.bincount(i, w * rhs, n_models) + np.bincount(j, w * rhs, n_models))
    present = np.diag(ata) > 0
    z = np.full(n_models, np.nan)
    sub = np.ix_(present, present)
    z[present] = np.linalg.lstsq(ata[sub], atb[present], rcond=None)[0]
    return z


def _predict(method: str, x_acc: np.ndarray, a_orig: np.ndarray, a_new: np.ndarray, pairs: np.ndarray,
             w: np.ndarray | None = None) -> tuple[np.ndarray, float, float]:
    slope, intercept = _wls_line(a_orig, a_new, w)
    if method == "aline-s":
        return slope * x_acc + intercept, slope, intercept
    return _aline_d(x_acc, a_orig, a_new, pairs, slope, len(x_acc), w), slope, intercept


def _as_top1(name: str, arr: np.ndarray, where: str) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = arr[:, 0]
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"{where}: predictions of {name} must be N or N x k integer class indices, "
                        f"got {arr.dtype} {arr.shape}")
    return arr


def agreement_on_the_line(
    original_predictions: Mapping[str, np.ndarray],
    original_labels: np.ndarray,
    new_predictions: Mapping[str, np.ndarray],
    *,
    num_classes: int | None = None,
    scale: str = "probit",
    method: str = "aline-d",
    max_pairs: int = DEFAULT_MAX_PAIRS,
    level: float = 0.95,
    n_bootstrap: int = 200,
    seed: int = 0,
    defect_z: float = 10.0,
    min_r2: float = 0.95,
    offset_sd: float | None = None,
) -> AgreementResult:
    """Predict each model's top-1 on a new test set from unlabeled new-set predictions.

    Parameters
    ----------
    original_predictions, new_predictions : mapping of model name -> array
        Top-1 (``N``) or top-k (``N x k``, best first) class indices, rows in each set's fixed order. Models
        in only one of the two are ignored. The new set's labels are not an input.
    original_labels : numpy.ndarray
        Labels of the original set (its accuracies are the x-axis).
    num_classes : int, optional
        Size of the label space (for the near-chance rule); default: the largest index seen + 1.
    scale : {"probit", "logit"}
        Scale of the agreement line.
    method : {"aline-d", "aline-s"}
        See the module docstring.
    max_pairs : int
        Bound on the number of pairs (all pairs when they fit, else a seeded sample).
    level : float
        Coverage the interval aims at.
    n_bootstrap : int
        Bootstrap resamples over models for the line's uncertainty (0: none).
    seed : int
        Seed of the pair sample and of the bootstrap.
    defect_z : float
        Robust z below which a model's new-set agreements mark its new-set predictions as defective.
    min_r2 : float
        Agreement-line R^2 below which a warning says the prediction is unreliable.
    offset_sd : float, optional
        SD (on the scale) of a systematic offset between the agreement and accuracy lines, added in quadrature
        to the interval; default :data:`DEFAULT_OFFSET_SD` for the scale (calibrated on five labelled shifts),
        0 for the model-to-model uncertainty alone.

    Returns
    -------
    AgreementResult
    """
    if scale not in ("probit", "logit"):
        raise ValueError(f"scale must be 'probit' or 'logit', got {scale!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    offset_sd = DEFAULT_OFFSET_SD[scale] if offset_sd is None else float(offset_sd)
    if not offset_sd >= 0:
        raise ValueError(f"offset_sd must be >= 0, got {offset_sd}")
    labels = np.asarray(original_labels)
    models = sorted(set(original_predictions) & set(new_predictions))
    only_one = sorted(set(original_predictions) ^ set(new_predictions))
    if len(models) < 3:
        raise DataError(f"agreement on the line needs at least 3 models with predictions on both sets, "
                        f"got {len(models)}")
    orig = np.stack([_as_top1(m, original_predictions[m], "original set") for m in models])
    try:
        new = np.stack([_as_top1(m, new_predictions[m], "new set") for m in models])
    except ValueError as e:
        raise DataError(f"new set: the models' predictions have different numbers of rows ({e})") from None
    if orig.shape[1] != len(labels):
        raise DataError(f"original set: {orig.shape[1]} predictions per model, {len(labels)} labels")
    n_orig, n_new = orig.shape[1], new.shape[1]
    if num_classes is None:
        num_classes = int(max(labels.max(), orig.max(), new.max())) + 1
    acc_orig = (orig == labels).mean(axis=1)
    warnings: list[str] = []
    excluded: dict[str, str] = {}

    chance = 1.0 / num_classes
    for m, a in zip(models, acc_orig, strict=True):
        if a <= 2 * chance:
            excluded[m] = f"near chance on the original set (top-1 {100 * a:.2f} %, chance {100 * chance:.2f} %)"

    def fit_pairs(keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        idx = np.flatnonzero(keep)
        pairs = select_pairs(len(idx), max_pairs, seed)
        c_orig = pairwise_agreement(orig[idx], pairs)
        c_new = pairwise_agreement(new[idx], pairs)
        return idx, pairs, c_orig, c_new, to_scale(100 * c_orig / n_orig, scale, n_orig), \
            to_scale(100 * c_new / n_new, scale, n_new)

    keep = np.array([m not in excluded for m in models])
    if keep.sum() >= 4:
        # defect rule: a model whose new-set agreements all fall far below the line (label-free)
        idx, pairs, _, _, a_o, a_n = fit_pairs(keep)
        slope, intercept = _wls_line(a_o, a_n)
        resid = a_n - (slope * a_o + intercept)
        med = np.array([np.median(resid[(pairs[:, 0] == k) | (pairs[:, 1] == k)]) for k in range(len(idx))])
        spread = max(1.4826 * np.median(np.abs(med - np.median(med))), 1e-3)
        rz = (med - np.median(med)) / spread
        for k in np.flatnonzero(rz < -defect_z):
            m = models[idx[k]]
            excluded[m] = (f"new-set predictions look defective: its agreement with the other models on the new set "
                           f"is {-rz[k]:.0f} robust SDs below the agreement line")
            keep[idx[k]] = False
    if keep.sum() < 3:
        raise DataError(f"agreement on the line: only {keep.sum()} usable models left after exclusions ({excluded})")
    for m in sorted(excluded):
        warnings.append(f"{m} left out: {excluded[m]}")
    if only_one:
        warnings.append(f"{len(only_one)} models have predictions on only one of the two sets and are not used: "
                        f"{', '.join(only_one)}")

    idx, pairs, c_orig, c_new, a_o, a_n = fit_pairs(keep)
    used = [models[k] for k in idx]
    x_acc = to_scale(100 * acc_orig[idx], scale, n_orig)
    z, slope, intercept = _predict(method, x_acc, a_o, a_n, pairs)
    lonely = np.flatnonzero(np.isnan(z))
    if len(lonely):
        # a model in no sampled pair has no ALine-D equation: it gets the agreement line's value (ALine-S)
        z[lonely] = slope * x_acc[lonely] + intercept
        warnings.append(f"{len(lonely)} models are in no sampled pair (raise max_pairs); their prediction is the "
                        f"agreement line's (aline-s): {', '.join(used[k] for k in lonely)}")
    resid = a_n - (slope * a_o + intercept)
    s = float(np.sqrt(np.sum(resid**2) / max(len(resid) - 2, 1)))
    r2 = float(np.corrcoef(a_o, a_n)[0, 1] ** 2) if len(pairs) > 2 else float("nan")

    # bootstrap over models: resample with replacement, weight each pair by the product of multiplicities
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_bootstrap):
        cnt = np.bincount(rng.integers(0, len(idx), len(idx)), minlength=len(idx)).astype(float)
        w = cnt[pairs[:, 0]] * cnt[pairs[:, 1]]
        sel = w > 0
        if sel.sum() < 3 or np.ptp(a_o[sel]) == 0:
            continue
        zb, _, _ = _predict(method, x_acc, a_o[sel], a_n[sel], pairs[sel], w[sel])
        boots.append(zb)  # aline-d: NaN for models not drawn; their variance comes from the replicates that have them
    v_line = np.zeros(len(idx))
    if boots:
        zb = np.array(boots)
        seen = (~np.isnan(zb)).sum(axis=0)
        ok = seen >= 2
        v_line[ok] = np.nanvar(zb[:, ok], axis=0)
    p_hat = from_scale(z, scale) / 100
    dens = stats.norm.pdf(z) if scale == "probit" else p_hat * (1 - p_hat)  # d p / d z
    v_binom = p_hat * (1 - p_hat) / n_new / np.maximum(dens, 1e-12) ** 2
    half = stats.norm.ppf(0.5 + level / 2) * np.sqrt(v_line + s**2 + v_binom + offset_sd**2)

    table = pd.DataFrame({
        "model": used,
        "original_top1": 100 * acc_orig[idx],
        "predicted_new_top1": from_scale(z, scale),
        "predicted_low": from_scale(z - half, scale),
        "predicted_high": from_scale(z + half, scale),
        "actual_new_top1": np.nan,
    })
    pairs_df = pd.DataFrame({
        "model_a": [used[i] for i in pairs[:, 0]],
        "model_b": [used[j] for j in pairs[:, 1]],
        "agree_original": c_orig, "n_original": n_orig,
        "agree_new": c_new, "n_new": n_new,
        "agreement_original": 100 * c_orig / n_orig,
        "agreement_new": 100 * c_new / n_new,
    })
    n_all = len(used) * (len(used) - 1) // 2
    fit = {
        "method": method, "scale": scale, "level": level, "slope": slope, "intercept": intercept, "r2": r2,
        "residual_sd": s, "n_models": len(used), "n_pairs": int(len(pairs)), "n_pairs_possible": n_all,
        "max_pairs": max_pairs, "pairs": "all" if len(pairs) == n_all else f"seeded sample (seed {seed})",
        "n_bootstrap": len(boots), "seed": seed, "n_original": n_orig, "n_new": n_new,
        "num_classes": num_classes, "defect_z": defect_z, "min_r2": min_r2, "offset_sd": offset_sd,
        "interval": "bootstrap over models + residual SD of the agreement points + binomial noise of the new-set "
                    f"top-1 + an offset between the agreement and accuracy lines of SD {offset_sd:g} on the scale "
                    "(seen on other shifts; the offset on this set cannot be measured without labels)",
    }
    if r2 < min_r2:
        warnings.append(f"the agreement line fits poorly (R^2 = {r2:.3f} < {min_r2}): the accuracy line is not "
                        "expected to coincide with it, and these predictions are unreliable")
    if len(used) < 8:
        warnings.append(f"only {len(used)} models: the agreement line rests on few points")
    lo, hi = a_o.min(), a_o.max()
    far = [m for m, x in zip(used, x_acc, strict=True) if x < lo - 0.5 * (hi - lo) or x > hi + 0.5 * (hi - lo)]
    if far:
        warnings.append(f"{len(far)} models' original accuracies lie far outside the agreement points' range "
                        f"(extrapolated): {', '.join(far)}")
    return AgreementResult(table=table, pairs=pairs_df, fit=fit, excluded=excluded, warnings=warnings)


# ------------------------------------------------------------------------------------------- the store


def read_prediction_folder(folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """Predictions of an unlabeled test set: ``FOLDER/<model>.npy`` (N or N x k class indices, best first).

    Model names are percent-decoded from the file names (``timm%2Fresnet50.npy`` -> ``timm/resnet50``), as in
    the store. Loaded without pickle.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder of <model>.npy prediction arrays")
    out = {unquote(p.stem): _as_top1(p.stem, load_npy(p), str(p)) for p in sorted(folder.glob("*.npy"))}
    if not out:
        raise DataError(f"{folder}: no <model>.npy prediction arrays in it")
    return out


def _store_top1(store: PredictionStore, test_set: str, models: Iterable[str] | None,
                sources: Sequence[str] | None) -> tuple[dict[str, np.ndarray], dict[str, tuple[str, str]]]:
    """Top-1 predictions of every (source, model) record of ``test_set`` that has predictions.

    A model present under two sources is named ``source/model``.
    """
    recs = [r for r in store.records() if r.test_set == test_set and r.k > 0
            and (sources is None or r.source in sources)]
    counts: dict[str, int] = {}
    for r in recs:
        counts[r.model] = counts.get(r.model, 0) + 1
    out, where = {}, {}
    wanted = None if models is None else set(models)
    for r in recs:
        name = r.model if counts[r.model] == 1 else f"{r.source}/{r.model}"
        if wanted is not None and name not in wanted and r.model not in wanted:
            continue
        out[name] = store.predictions(r.source, r.model, test_set)[:, 0]
        where[name] = (r.source, r.model)
    return out, where


def predict_unlabeled(
    store: str | os.PathLike | PredictionStore,
    original: str,
    new: str,
    *,
    models: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
    new_predictions: str | os.PathLike | Mapping[str, np.ndarray] | None = None,
    **kwargs: Any,
) -> pd.DataFrame:
    """Predicted top-1 of each model on ``new`` from the store's unlabeled predictions (agreement on the line).

    Parameters
    ----------
    store : path or PredictionStore
        Holds the original set's labels and records with predictions, and (unless ``new_predictions``) the new
        set's records with predictions. Only the new set's predictions arrays are read for the prediction.
    original, new : str
        Test-set names (``new`` is only a label when ``new_predictions`` is given).
    models : sequence of str, optional
        Restrict to these models (default: every model with predictions on both sets).
    sources : sequence of str, optional
        Restrict to records of these sources.
    new_predictions : folder or mapping, optional
        The new set's predictions when the store does not hold them (a set with no labels yet):
        a folder of ``<model>.npy`` (:func:`read_prediction_folder`) or a mapping model -> array.
    **kwargs
        Passed to :func:`agreement_on_the_line` (``scale``, ``method``, ``max_pairs``, ``level``, ...).

    Returns
    -------
    pandas.DataFrame
        :data:`PREDICTION_COLUMNS`, percent, one row per model used; ``actual_new_top1`` from the store's
        records of ``new`` when the store holds labels for it, else NaN. ``df.attrs["result"]`` is the
        :class:`AgreementResult` (fit, pairs, excluded models, warnings).
    """
    store = store if isinstance(store, PredictionStore) else PredictionStore(store)
    labels = store.labels(original)
    if labels is None:
        raise DataError(f"store {store.root}: no labels for the original set {original!r}")
    orig_preds, _ = _store_top1(store, original, models, sources)
    if new_predictions is None:
        new_preds, where = _store_top1(store, new, models, sources)
        if not new_preds:
            raise DataError(f"store {store.root}: no records with predictions for {new!r}")
    else:
        new_preds = (read_prediction_folder(new_predictions) if isinstance(new_predictions, (str, os.PathLike))
                     else dict(new_predictions))
        if models is not None:
            new_preds = {m: v for m, v in new_preds.items() if m in set(models)}
        where = {}
    if models is not None:
        missing = sorted(set(models) - (set(orig_preds) & set(new_preds)))
        if missing:
            raise DataError(f"no predictions on both {original} and {new} for: {', '.join(missing)}")
    info = get_info(original)
    num_classes = info.num_classes if info is not None else None
    result = agreement_on_the_line(orig_preds, labels, new_preds, num_classes=num_classes, **kwargs)
    # the truth, read only after the prediction and only where the store holds the new set's labels
    if where and new in store.test_sets():
        actual = {}
        for name, (src, model) in where.items():
            rec = store.get(src, model, new)
            actual[name] = 100.0 * rec.top1_correct / rec.n
        result.table["actual_new_top1"] = result.table["model"].map(actual).astype(float)
    result.fit.update({"original": original, "new": new, "store": str(store.root)})
    df = result.table.copy()
    df.attrs["result"] = result
    return df


def write_predictions(df: pd.DataFrame, out: str | os.PathLike) -> list[Path]:
    """Write ``OUT/predictions.csv`` (:data:`PREDICTION_COLUMNS`), ``OUT/agreement_pairs.csv`` and
    ``OUT/agreement_fit.json`` (the line, settings, excluded models, warnings) for a :func:`predict_unlabeled`
    result."""
    out = Path(out)
    result: AgreementResult | None = df.attrs.get("result")
    written = [atomic_write_text(out / "predictions.csv", csv_text(df[PREDICTION_COLUMNS]))]
    if result is not None:
        written.append(atomic_write_text(out / "agreement_pairs.csv", csv_text(result.pairs)))
        written.append(atomic_write_json(out / "agreement_fit.json", {
            **{k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in result.fit.items()},
            "excluded": result.excluded, "warnings": result.warnings}))
    return written
