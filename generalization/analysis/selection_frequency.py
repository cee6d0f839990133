"""Selection frequency and accuracy on real human annotations (CIFAR-10H votes + released predictions).

The paper explains the accuracy gap by a shift in *selection frequency*: the new test sets hold images
that fewer annotators recognise, and every model does worse on those. With per-image class votes for a
test set (CIFAR-10H: about 50 votes for each CIFAR-10 test image) and per-image predictions of many models
(the 30 CIFAR-10.1 release models, in a :class:`~generalization.store.records.PredictionStore`), this module

1. turns votes into per-image selection frequencies of the labelled class
   (:func:`generalization.selection_frequency.selection_frequencies_from_counts`, the code the sampler uses);
2. measures accuracy per frequency bin (the sampler's bins, or quantile bins) with Clopper-Pearson
   intervals (:func:`accuracy_by_frequency`) and draws it (:func:`plot_accuracy_by_frequency`,
   :func:`write_accuracy_by_frequency`);
3. scores the models on a subset of the test set from their stored predictions, no model is run
   (:func:`resample_accuracies`, :func:`fit_resample`);
4. measures the *estimation bias* of frequencies estimated from k of the votes (:func:`subsample_votes`,
   :func:`estimation_bias`).

Drawing frequency-shifted resamples with the sampler's MatchedFrequency, and the study's report
(``results/selection-frequency``), cross into the sampler: they are the workflow
:mod:`generalization.workflows.selection_frequency_study`. Everything derived from CIFAR-10H is under
CC BY-NC-SA 4.0 (:data:`CIFAR10H_LICENCE_NOTE`).

All randomness is seeded (``numpy.random.default_rng`` for the vote subsampling), and nothing iterates a set,
so results do not depend on ``PYTHONHASHSEED``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..files import DataError, atomic_write_text, csv_text, load_npy
from ..metrics import clopper_pearson
from ..selection_frequency import HISTOGRAM_BINS, histogram_bins, selection_frequencies_from_counts

__all__ = [
    "CIFAR10H_LICENCE_NOTE",
    "FINE_EDGES",
    "load_votes",
    "frequencies_from_votes",
    "frequency_bins",
    "accuracy_by_frequency",
    "store_predictions",
    "accuracy_by_frequency_from_store",
    "resample_accuracies",
    "fit_resample",
    "subsample_votes",
    "estimation_bias",
    "plot_accuracy_by_frequency",
    "write_accuracy_by_frequency",
    "write_accuracy_by_frequency_from_store",
    "licence_corner",
    "write_licence_notice",
]

CIFAR10H_LICENCE_NOTE = (
    "Derived from CIFAR-10H (Peterson et al., ICCV 2019), licensed CC BY-NC-SA 4.0; "
    "this output is shared under the same licence."
)
#: finer edges for the shift sweep: CIFAR-10H frequencies sit mostly in [0.8, 1], where the sampler's
#: five bins have one bin; a frequency of exactly 1.0 falls in the last bin (values on an edge go up)
FINE_EDGES = (0.6, 0.8, 0.9, 0.95, 1.0)


# ------------------------------------------------------------------------------------------- votes


def load_votes(path: str | os.PathLike, *, num_images: int | None = None) -> np.ndarray:
    """Read an N x C vote-count ``.npy`` (CIFAR-10H's ``cifar10h-counts.npy``) and check it.

    Raises :class:`DataError` naming the file when it is not a 2-D array of non-negative whole counts or
    does not have ``num_images`` rows.
    """
    counts = load_npy(path)
    if counts.ndim != 2:
        raise DataError(
            f"{path}: expected an images x classes array of vote counts, got shape {counts.shape}"
        )
    if not np.issubdtype(counts.dtype, np.integer):
        if not (np.issubdtype(counts.dtype, np.floating) and np.isfinite(counts).all()
                and (counts == np.round(counts)).all()):  # fmt: skip
            raise DataError(f"{path}: vote counts must be whole numbers, got dtype {counts.dtype}")
        counts = counts.astype(np.int64)
    if (counts < 0).any():
        raise DataError(f"{path}: negative vote counts")
    if num_images is not None and counts.shape[0] != num_images:
        raise DataError(f"{path}: {counts.shape[0]} rows of votes, the test set has {num_images} images")
    return counts.astype(np.int64)


def frequencies_from_votes(counts: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """Per-image selection frequency of the labelled class from vote counts (the code the sampler uses).

    Returns ``image_id`` (row index), ``class`` (label), ``num_annotations``, ``num_selected`` and
    ``selection_frequency`` = votes for the label / all votes of the image (NaN without votes).
    """
    labels = np.asarray(labels)
    if len(labels) != len(counts):
        raise DataError(f"{len(counts)} rows of votes but {len(labels)} labels")
    return selection_frequencies_from_counts(counts, labels.astype(np.int64))


# -------------------------------------------------------------------------------- accuracy by bin


def _bin_labels(edges: Sequence[float]) -> list[str]:
    e = list(edges)
    labels = [f"<{e[0]:g}"] + [f"{e[i]:g}–{e[i + 1]:g}" for i in range(len(e) - 1)]
    last = f"≥{e[-1]:g}" if e[-1] < 1 else "=1"
    return labels + [last]


def frequency_bins(
    frequencies, binning: str = "sampler", *, edges: Sequence[float] | None = None, n_quantiles: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Bin index of every frequency, and the edges used.

    ``binning="sampler"``: the sampler's edges (:data:`generalization.selection_frequency.HISTOGRAM_BINS`, or
    ``edges``); ``"quantile"``: edges at the ``n_quantiles``-quantiles of the frequencies, duplicates
    dropped (CIFAR-10H has many ties at 1.0, so there are fewer, unequal bins; exactly 1.0 is its own bin).
    A value on an edge goes to the upper bin, as in the sampler. NaN is an error.
    """
    f = np.asarray(frequencies, dtype=np.float64)
    if binning == "sampler":
        e = np.asarray(HISTOGRAM_BINS if edges is None else edges, dtype=np.float64)
    elif binning == "quantile":
        if np.isnan(f).any():
            raise DataError("selection frequencies contain NaN (images without annotations)")
        q = np.quantile(f, np.linspace(0, 1, int(n_quantiles) + 1)[1:-1])
        e = np.unique(q[(q > f.min())])  # an edge at the minimum would leave bin 0 empty
    else:
        raise ValueError(f"unknown binning {binning!r} (use 'sampler' or 'quantile')")
    return histogram_bins(f, e), e


def accuracy_by_frequency(
    predictions: Mapping[str, np.ndarray],
    labels: np.ndarray,
    frequencies,
    *,
    binning: str = "sampler",
    edges: Sequence[float] | None = None,
    n_quantiles: int = 10,
    level: float = 0.95,
    source: str = "",
) -> pd.DataFrame:
    """Top-1 accuracy of every model per selection-frequency bin, with Clopper-Pearson intervals.

    Parameters
    ----------
    predictions
        ``{model: predictions}``, each N (or N x k, best first; column 0 is used) in the test set's order.
    labels, frequencies
        The N labels and selection frequencies (same order). Images with a NaN frequency (no votes) are
        left out.
    binning, edges, n_quantiles
        See :func:`frequency_bins`.

    Returns
    -------
    One row per (model, bin), models sorted: ``source``, ``model``, ``binning``, ``bin``, ``bin_label``,
    ``freq_low``, ``freq_high`` (the bin's edges), ``mean_frequency``, ``n``, ``correct``, ``accuracy``,
    ``ci_low``, ``ci_high`` (percent).
    """
    labels = np.asarray(labels).astype(np.int64)
    f = np.asarray(frequencies, dtype=np.float64)
    if f.shape != labels.shape:
        raise DataError(f"{len(f)} frequencies for {len(labels)} labels")
    keep = ~np.isnan(f)
    bins, e = frequency_bins(f[keep], binning, edges=edges, n_quantiles=n_quantiles)
    nb = len(e) + 1
    names = _bin_labels(e) if binning == "sampler" else [f"q{b}" for b in range(nb)]
    lows = np.r_[0.0, e]
    highs = np.r_[e, 1.0]
    n = np.bincount(bins, minlength=nb)
    mean_f = np.bincount(bins, weights=f[keep], minlength=nb) / np.maximum(n, 1)
    rows = []
    for model in sorted(predictions):
        p = np.asarray(predictions[model])
        p = p[:, 0] if p.ndim == 2 else p
        if p.shape[0] != len(labels):
            raise DataError(f"model {model!r}: {p.shape[0]} predictions for {len(labels)} images")
        correct = np.bincount(bins, weights=(p[keep] == labels[keep]).astype(np.float64), minlength=nb)
        lo, hi = clopper_pearson(correct, n, level)
        for b in range(nb):
            rows.append((source, model, binning, b, names[b], lows[b], highs[b], mean_f[b], int(n[b]),
                         int(correct[b]), 100.0 * correct[b] / n[b] if n[b] else np.nan, 100.0 * lo[b],
                         100.0 * hi[b]))  # fmt: skip
    return pd.DataFrame(
        rows,
        columns=[
            "source",
            "model",
            "binning",
            "bin",
            "bin_label",
            "freq_low",
            "freq_high",
            "mean_frequency",
            "n",
            "correct",
            "accuracy",
            "ci_low",
            "ci_high",
        ],
    )


def store_predictions(store, test_set: str, *, sources: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Top-1 predictions of every record with per-image predictions on ``test_set``.

    Keys are model names, or ``source/model`` when several sources are stored. Accuracy-only records
    (published tables) are skipped.
    """
    from ..store.records import PredictionStore

    store = store if isinstance(store, PredictionStore) else PredictionStore(store)
    recs = [r for r in store.records() if r.test_set == test_set and (sources is None or r.source in sources)]
    many = len({r.source for r in recs}) > 1
    out = {}
    for r in recs:
        p = store.predictions(r.source, r.model, r.test_set)
        if p is None:
            continue
        out[f"{r.source}/{r.model}" if many else r.model] = (
            np.asarray(p)[:, 0] if p.ndim == 2 else np.asarray(p)
        )
    return dict(sorted(out.items()))


def accuracy_by_frequency_from_store(
    store, test_set: str, frequencies, *, sources: Sequence[str] | None = None, **kwargs: Any
) -> pd.DataFrame:
    """:func:`accuracy_by_frequency` for every model in a store with per-image predictions on ``test_set``
    (labels from the store)."""
    from ..store.records import PredictionStore

    store = store if isinstance(store, PredictionStore) else PredictionStore(store)
    labels = store.labels(test_set)
    if labels is None:
        raise DataError(f"{store.root}: the store has no labels for {test_set!r}")
    preds = store_predictions(store, test_set, sources=sources)
    if not preds:
        raise DataError(f"{store.root}: no per-image predictions on {test_set!r}")
    return accuracy_by_frequency(preds, labels, frequencies, **kwargs)


# ------------------------------------------------------------------------------ accuracy on a resample


def resample_accuracies(
    predictions: Mapping[str, np.ndarray],
    labels: np.ndarray,
    image_ids: Sequence[int],
    *,
    level: float = 0.95,
) -> pd.DataFrame:
    """Each model's top-1 on the full test set and on the resample (rows ``image_ids``), and the gap.

    Returns, per model (sorted): ``model``, ``n_orig``, ``correct_orig``, ``orig``, ``orig_ci_low``,
    ``orig_ci_high``, ``n_new``, ``correct_new``, ``new``, ``new_ci_low``, ``new_ci_high``, ``gap``
    (orig - new, points). Accuracies in percent, Clopper-Pearson intervals.
    """
    labels = np.asarray(labels).astype(np.int64)
    idx = np.asarray(image_ids, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= len(labels)):
        raise DataError("resample image ids must be row indices of the test set")
    rows = []
    for model in sorted(predictions):
        p = np.asarray(predictions[model])
        p = p[:, 0] if p.ndim == 2 else p
        ok = p == labels
        rows.append((model, len(ok), int(ok.sum()), len(idx), int(ok[idx].sum())))
    df = pd.DataFrame(rows, columns=["model", "n_orig", "correct_orig", "n_new", "correct_new"])
    for which in ("orig", "new"):
        k, n = df[f"correct_{which}"].to_numpy(float), df[f"n_{which}"].to_numpy(float)
        lo, hi = clopper_pearson(k, n, level)
        df[which] = 100.0 * k / np.maximum(n, 1)
        df[f"{which}_ci_low"], df[f"{which}_ci_high"] = 100.0 * lo, 100.0 * hi
    df["gap"] = df["orig"] - df["new"]
    return df[
        [
            "model",
            "n_orig",
            "correct_orig",
            "orig",
            "orig_ci_low",
            "orig_ci_high",
            "n_new",
            "correct_new",
            "new",
            "new_ci_low",
            "new_ci_high",
            "gap",
        ]
    ]


def fit_resample(
    acc: pd.DataFrame, *, n_bootstrap: int = 1000, seed: int = 0, scales=("linear", "probit")
) -> dict:
    """Linear and probit trend fits of resample vs original accuracy (:func:`generalization.analysis.trends.fit_trend`)."""
    from .trends import fit_trend

    return {s: fit_trend(acc["orig"], acc["new"], s, n_orig=acc["n_orig"], n_new=acc["n_new"],
                         n_bootstrap=n_bootstrap, seed=seed) for s in scales}  # fmt: skip


# ----------------------------------------------------------------------------------- estimation bias


def subsample_votes(counts: np.ndarray, k: int, *, seed: int) -> np.ndarray:
    """Keep ``k`` of each image's votes, drawn without replacement (seeded), as an N x C count matrix.

    Each row is one multivariate hypergeometric draw (``numpy.random.default_rng(seed)``, rows in order).
    An image with fewer than ``k`` votes is an error.
    """
    counts = np.asarray(counts, dtype=np.int64)
    n = counts.sum(axis=1)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if (n < k).any():
        raise DataError(f"{int((n < k).sum())} images have fewer than k = {k} votes (first: row "
                        f"{int(np.flatnonzero(n < k)[0])})")  # fmt: skip
    rng = np.random.default_rng(seed)
    return np.stack([rng.multivariate_hypergeometric(row, k) for row in counts]).astype(np.int64)


def estimation_bias(
    counts: np.ndarray,
    labels: np.ndarray,
    ks: Sequence[int] = (3, 5, 10),
    *,
    seed: int = 0,
    edges: Sequence[float] = HISTOGRAM_BINS,
) -> pd.DataFrame:
    """How k-vote frequency estimates relate to the full-vote frequency, per *estimated* bin.

    For each k: subsample k votes per image (:func:`subsample_votes`, seed ``seed + k``), bin the images
    by their k-vote estimate, and report per bin ``n``, ``mean_estimated``, ``mean_true`` (full-vote
    frequency) and ``bias`` = mean_true - mean_estimated; the row ``bin = -1`` (label "all") gives the
    whole set, where the estimate is unbiased, with ``mean_abs_error`` and ``share_rebinned`` (images
    whose estimated bin differs from their full-vote bin).
    """
    labels = np.asarray(labels).astype(np.int64)
    true = frequencies_from_votes(counts, labels)["selection_frequency"].to_numpy()
    true_bins = histogram_bins(true, edges)
    names = _bin_labels(edges)
    rows = []
    for k in ks:
        est = frequencies_from_votes(subsample_votes(counts, int(k), seed=seed + int(k)), labels)
        e = est["selection_frequency"].to_numpy()
        b = histogram_bins(e, edges)
        rows.append((int(k), -1, "all", len(e), float(e.mean()), float(true.mean()), float(true.mean() - e.mean()),
                     float(np.abs(true - e).mean()), float((b != true_bins).mean())))  # fmt: skip
        for j in range(len(edges) + 1):
            m = b == j
            if not m.any():
                rows.append((int(k), j, names[j], 0, np.nan, np.nan, np.nan, np.nan, np.nan))
                continue
            rows.append((int(k), j, names[j], int(m.sum()), float(e[m].mean()), float(true[m].mean()),
                         float(true[m].mean() - e[m].mean()), float(np.abs(true[m] - e[m]).mean()),
                         float((true_bins[m] != j).mean())))  # fmt: skip
    return pd.DataFrame(
        rows,
        columns=[
            "k",
            "bin",
            "bin_label",
            "n",
            "mean_estimated",
            "mean_true",
            "bias",
            "mean_abs_error",
            "share_rebinned",
        ],
    )


# ------------------------------------------------------------------------------------------- figures


def licence_corner(fig, note: str | None) -> None:
    """Print a licence note (e.g. :data:`CIFAR10H_LICENCE_NOTE`) small in the figure's lower right corner."""
    if note:
        fig.text(0.995, 0.005, note, ha="right", va="bottom", fontsize=6, color="0.35")


def plot_accuracy_by_frequency(
    table: pd.DataFrame, ax=None, *, title: str | None = None, colorbar: bool = True
):
    """One line per model: top-1 (%) per frequency bin with Clopper-Pearson bars, coloured by the model's
    overall accuracy (darker = less accurate). Bins are equally spaced and labelled with their range."""
    import matplotlib.pyplot as plt
    from matplotlib import cm, colors

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4.5))
    bins = table.drop_duplicates("bin").sort_values("bin")
    overall = table.groupby("model").apply(lambda g: 100.0 * g["correct"].sum() / g["n"].sum(),
                                           include_groups=False)  # fmt: skip
    norm = colors.Normalize(vmin=float(overall.min()), vmax=float(overall.max()))
    cmap = plt.get_cmap("viridis")
    x = bins["bin"].to_numpy()
    for model, g in table.groupby("model", sort=True):
        g = g.sort_values("bin")
        ok = g["n"] > 0
        g = g[ok]
        c = cmap(norm(overall[model]))
        ax.errorbar(g["bin"], g["accuracy"], yerr=[g["accuracy"] - g["ci_low"], g["ci_high"] - g["accuracy"]],
                    color=c, marker="o", ms=3, lw=1, elinewidth=0.5, capsize=0, alpha=0.85)  # fmt: skip
    if table["binning"].iloc[0] == "sampler":
        labels = [f"{lb}\n(n={n})" for lb, n in zip(bins["bin_label"], bins["n"], strict=True)]
    else:
        labels = [f"{lo:.3g}–{hi:.3g}\n(n={n})" for lo, hi, n in
                  zip(bins["freq_low"], bins["freq_high"], bins["n"], strict=True)]  # fmt: skip
        labels[-1] = labels[-1] if bins["freq_low"].iloc[-1] < 1 else f"=1\n(n={bins['n'].iloc[-1]})"
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_xlabel("selection frequency of the labelled class (bin)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.grid(True, color="0.9", lw=0.6)
    if title:
        ax.set_title(title, fontsize=10)
    if colorbar:
        sm = cm.ScalarMappable(norm=norm, cmap=cmap)
        cb = plt.colorbar(sm, ax=ax, pad=0.02)
        cb.set_label("model's accuracy on the full test set (%)", fontsize=8)
    return ax


def _accuracy_by_frequency_figure(sampler: pd.DataFrame, quantile: pd.DataFrame, note: str | None, what: str):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    m = sampler["model"].nunique()
    plot_accuracy_by_frequency(
        sampler, axes[0], title=f"{what}: {m} models, the sampler's bins", colorbar=False
    )
    plot_accuracy_by_frequency(quantile, axes[1], title=f"{what}: {m} models, quantile bins (ties merged)")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    licence_corner(fig, note)
    return fig


def write_accuracy_by_frequency(
    predictions: Mapping[str, np.ndarray],
    labels: np.ndarray,
    frequencies,
    out: str | os.PathLike,
    *,
    n_quantiles: int = 10,
    licence_note: str | None = CIFAR10H_LICENCE_NOTE,
    what: str = "CIFAR-10 test set",
) -> list[Path]:
    """Write ``accuracy_by_frequency.csv`` (sampler bins), ``accuracy_by_frequency_quantile.csv`` and
    ``accuracy_by_frequency.png`` into ``out`` (plus ``NOTICE.md`` with the licence note). Returns the paths."""
    from .plots import save_figure

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    s = accuracy_by_frequency(predictions, labels, frequencies, binning="sampler")
    q = accuracy_by_frequency(predictions, labels, frequencies, binning="quantile", n_quantiles=n_quantiles)
    written = [
        _csv(s, out / "accuracy_by_frequency.csv"),
        _csv(q, out / "accuracy_by_frequency_quantile.csv"),
    ]
    written.append(
        save_figure(
            _accuracy_by_frequency_figure(s, q, licence_note, what), out / "accuracy_by_frequency.png"
        )
    )
    if licence_note:
        written.append(write_licence_notice(out, licence_note))
    return written


def write_accuracy_by_frequency_from_store(
    store, test_set: str, votes: str | os.PathLike, out: str | os.PathLike, **kwargs: Any
) -> list[Path]:
    """:func:`write_accuracy_by_frequency` for every model in ``store`` with per-image predictions on
    ``test_set``, frequencies from the vote-count file ``votes`` and the store's labels."""
    from ..store.records import PredictionStore

    st = store if isinstance(store, PredictionStore) else PredictionStore(store)
    labels = st.labels(test_set)
    if labels is None:
        raise DataError(f"{st.root}: the store has no labels for {test_set!r}")
    preds = store_predictions(st, test_set)
    if not preds:
        raise DataError(f"{st.root}: no per-image predictions on {test_set!r}")
    counts = load_votes(votes, num_images=len(labels))
    f = frequencies_from_votes(counts, labels)["selection_frequency"].to_numpy()
    return write_accuracy_by_frequency(preds, labels, f, out, **kwargs)


def _csv(df: pd.DataFrame, path: Path) -> Path:
    return atomic_write_text(path, csv_text(df))


def write_licence_notice(out: Path, note: str) -> Path:
    """Write ``out/NOTICE.md``: the licence note, CIFAR-10H's citation and licence. Returns its path."""
    return atomic_write_text(
        out / "NOTICE.md",
        (
            "# Licence of the files in this folder\n\n"
            f"{note}\n\n"
            "CIFAR-10H: Joshua C. Peterson, Ruairidh M. Battleday, Thomas L. Griffiths, Olga Russakovsky, "
            '"Human uncertainty makes classification more robust", ICCV 2019 '
            "(https://github.com/jcpeterson/cifar-10h). Licence: Creative Commons Attribution-NonCommercial-"
            "ShareAlike 4.0 International (https://creativecommons.org/licenses/by-nc-sa/4.0/).\n\n"
            "Every table and figure here that uses selection frequencies is derived from CIFAR-10H and carries "
            "that licence. The model predictions come from the CIFAR-10.1 release (MIT).\n"
        ),
    )
