"""Cumulative error distribution (CED) plots as PNG files (matplotlib's Agg canvas; no global pyplot state).

Example:
    >>> plot_ced({"all": errors_percent}, "ced.png", xlabel="NME (%)", xmax=10)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from facerecon.core.check import check_positive, describe
from facerecon.eval.landmark_metrics import ced_curve

__all__ = ["plot_ced"]


def plot_ced(
    curves: Mapping[str, np.ndarray],
    path: str | os.PathLike[str],
    *,
    xlabel: str,
    xmax: float,
    ylabel: str = "images at or below (%)",
    title: str = "",
    points: int = 400,
) -> None:
    """Draw one CED curve per entry of ``curves`` and write the figure as a PNG (atomically).

    Args:
        curves: label -> ``(N,)`` float errors (an empty array draws nothing but keeps the label out).
        path: the PNG file.
        xlabel: the error's name and unit, e.g. ``"NME (%)"``.
        xmax: the x-axis range ``[0, xmax]``.
        ylabel: what is counted, e.g. ``"scan points at or below (%)"``.
        title: the figure's title.
        points: samples along x.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from facerecon.io.atomic import atomic_path

    check_positive(xmax, "xmax")
    if not isinstance(curves, Mapping):
        raise TypeError(f"curves: expected a mapping of label -> errors, got {describe(curves)}")
    xs = np.linspace(0.0, float(xmax), int(points))
    fig = Figure(figsize=(6.4, 4.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for label, errors in curves.items():
        e = np.asarray(errors, dtype=np.float64).ravel()
        if e.size == 0:
            continue
        style = {"color": "black", "linewidth": 2.0} if label == "all" else {}
        ax.plot(xs, 100.0 * ced_curve(e, xs), label=f"{label} (n={e.size}, mean {e.mean():.3g})", **style)
    ax.set_xlim(0, float(xmax))
    ax.set_ylim(0, 100)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
