"""Figures for :mod:`ift_core.theory.readings`: Figure 4's caption tested for every reading side by side.

Examples
--------
>>> import pandas as pd
>>> from ift_core.theory import readings as rd
>>> from ift_core.plots.readings import plot_caption_test
>>> b = rd.bases(dict(t_r=[100, 1000]))
>>> df = pd.concat([rd.caption_sweeps(b, reading=r).assign(reading=r) for r in ("literal", "exposure")])
>>> len(plot_caption_test(df).axes)
4
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..theory.readings import CRITERIA, Criteria

from ift_core.plots.style import book_figure, use_book_style

use_book_style()

__all__ = ["plot_caption_test"]

_LEADS = {"t_r": ("$t_r$", "$t_d$"), "n_r": ("$n_r$", "$n_d$")}


@book_figure
def plot_caption_test(df: pd.DataFrame, *, criteria: Criteria = CRITERIA, quantiles: tuple[float, float] = (0.25, 0.75)
                      ) -> plt.Figure:
    """One column per reading, one row per swept parameter: ``|rel gap|`` along the caption's sweeps.

    For each factor, the line is the median over the bases of ``|E[dis] - E[err]| / E[err]``
    and the band spans the given quantiles; dashed: the rare parameter alone, solid: coupled
    with the dominant one. The dotted lines are ``criteria.near`` (green: "at GDE") and
    ``criteria.deviate`` (red: "deviates").

    Parameters
    ----------
    df : DataFrame
        :func:`ift_core.theory.readings.caption_sweeps` outputs with a ``reading`` column.
    criteria : Criteria
    quantiles : (low, high)

    Returns
    -------
    Figure
    """
    need = ["reading", "lead", "coupled", "factor", "rel_gap"]
    if not isinstance(df, pd.DataFrame) or not set(need) <= set(df.columns):
        raise ValueError(f"df must be caption_sweeps outputs with a reading column (columns {need})")
    readings = list(dict.fromkeys(df["reading"]))
    fig, axes = plt.subplots(2, len(readings), figsize=(2.9 * len(readings), 5.6), sharex=True, sharey=True,
                             squeeze=False)
    colors = sns.color_palette("deep")
    top = 0.0
    for col, reading in enumerate(readings):
        for row, lead in enumerate(_LEADS):
            ax = axes[row, col]
            part = df[(df["reading"] == reading) & (df["lead"] == lead)].assign(abs_rel=lambda d: d["rel_gap"].abs())
            for coupled, style, color in ((False, "--", colors[3]), (True, "-", colors[2])):
                g = part[part["coupled"] == coupled].groupby("factor")["abs_rel"]
                mid, lo, hi = g.median(), g.quantile(quantiles[0]), g.quantile(quantiles[1])
                label = f"{_LEADS[lead][0]} alone" if not coupled else f"with {_LEADS[lead][1]}"
                ax.plot(mid.index, mid.to_numpy(), style, marker="o", ms=3, color=color, label=label)
                ax.fill_between(mid.index, lo.to_numpy(), hi.to_numpy(), color=color, alpha=0.15, lw=0)
                top = max(top, float(np.nanmax(hi.to_numpy())) if len(hi) else 0.0)
            ax.axhline(criteria.near, color=colors[2], ls=":", lw=1)
            ax.axhline(criteria.deviate, color=colors[3], ls=":", lw=1)
            ax.set_xscale("log", base=2)
            if row == 0:
                ax.set_title(reading.replace("_", " "), fontsize="medium")
            if col == 0:
                ax.set_ylabel(f"{_LEADS[lead][0]} sweep: |dis - err| / err")
            if row == 1:
                ax.set_xlabel("factor on the rare parameter")
            if col == 0:
                ax.legend(frameon=False, fontsize="small", loc="upper left")
    axes[0, 0].set_ylim(0, min(max(top * 1.05, 2 * criteria.deviate), 3.0))
    fig.tight_layout()
    return fig
