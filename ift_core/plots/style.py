"""The book's one figure style: legible at the column width, words for every label.

The book's text column is about :data:`COLUMN_PX` pixels wide; a figure wider than that is
shown scaled down, and its text shrinks with it. Every figure function of :mod:`ift_core.plots`
is wrapped by :func:`book_figure`, which draws it under :data:`BOOK_RC` and then
:func:`fit_to_column`: a figure wider than :data:`MAX_WIDTH_IN` is narrowed, and any text that
would be smaller than :data:`MIN_TEXT_PX` pixels in the column is enlarged. Importing a plotting
module also applies :data:`BOOK_RC` to matplotlib (:func:`use_book_style`), so the few figures
a chapter draws itself look the same.

:func:`smallest_text_px` and :func:`raw_names` are the checks the tests run on every figure.

Examples
--------
>>> import matplotlib.pyplot as plt
>>> fig, ax = plt.subplots(figsize=(14, 3))
>>> _ = ax.set_title("a title", fontsize=6)
>>> bool(smallest_text_px(fit_to_column(fig)) >= MIN_TEXT_PX)
True
>>> raw_names(fig)
[]
"""
from __future__ import annotations

import functools
import re
import warnings
from typing import Any, Callable, TypeVar

import matplotlib
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.text import Text

__all__ = ["BOOK_RC", "COLUMN_PX", "MIN_TEXT_PX", "MAX_WIDTH_IN", "use_book_style", "fit_to_column",
           "book_figure", "smallest_text_px", "raw_names", "plain_number", "stats_table"]

#: Width in pixels of the book's text column (sphinx-book-theme at a 1400 px window).
COLUMN_PX = 700
#: The smallest text, in pixels as the reader sees it in the column.
MIN_TEXT_PX = 9.0
#: Figures are at most this wide (inches, at :data:`DPI`), so no figure is scaled below 0.75.
MAX_WIDTH_IN = 9.0
DPI = 100

BOOK_RC: dict[str, Any] = {
    "figure.dpi": DPI,
    "savefig.dpi": "figure",
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "legend.title_fontsize": 10,
    "figure.titlesize": 13,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "lines.markersize": 5,
    "axes.prop_cycle": matplotlib.cycler(color=["#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc",
                                                "#ca9161", "#fbafe4", "#949494", "#ece133", "#56b4e9"]),
}

_F = TypeVar("_F", bound=Callable[..., Any])


def use_book_style() -> None:
    """Apply :data:`BOOK_RC` to matplotlib's defaults (what importing a plotting module does)."""
    matplotlib.rcParams.update(BOOK_RC)


def _scale(fig: Figure, column_px: float) -> float:
    """How much the column shrinks the figure: 1 when it fits, else column / natural width.

    The natural width is that of the saved image: the book saves figures with
    ``bbox_inches="tight"``, so text outside the axes (a legend, a long title) widens it.
    """
    width = fig.get_figwidth()
    try:
        width = max(width, fig.get_tightbbox().width)
    except (AttributeError, TypeError, ValueError):  # pragma: no cover - no renderer to measure with
        pass
    return min(1.0, column_px / (width * fig.dpi))


def _texts(fig: Figure) -> list[Text]:
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def smallest_text_px(fig: Figure, *, column_px: float = COLUMN_PX) -> float:
    """The size, in pixels as shown in a column ``column_px`` wide, of the figure's smallest text.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots(figsize=(7, 3), dpi=100)
    >>> _ = ax.set_title("x", fontsize=9)
    >>> bool(round(smallest_text_px(fig), 1) <= 12.5)
    True
    """
    fig.draw_without_rendering()  # tick labels exist only once drawn
    sizes = [t.get_fontsize() for t in _texts(fig)]
    if not sizes:
        return float("inf")
    return min(sizes) * fig.dpi / 72.0 * _scale(fig, column_px)


def fit_to_column(fig: Figure, *, column_px: float = COLUMN_PX, min_px: float = MIN_TEXT_PX,
                  max_width: float = MAX_WIDTH_IN) -> Figure:
    """Narrow ``fig`` to ``max_width`` inches and enlarge text that would be below ``min_px``.

    Returns ``fig`` itself. A figure laid out by ``tight_layout`` is laid out again.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> fig = fit_to_column(plt.figure(figsize=(15, 4)))
    >>> bool(fig.get_figwidth() <= MAX_WIDTH_IN)
    True
    """
    width, height = fig.get_size_inches()
    if width > max_width:
        fig.set_size_inches(max_width, height * max(0.7, max_width / width), forward=True)
    fig.draw_without_rendering()
    need_pt = min_px * 72.0 / (fig.dpi * _scale(fig, column_px))
    for text in _texts(fig):
        if text.get_fontsize() < need_pt:
            text.set_fontsize(need_pt)
    if fig.get_layout_engine() is None and fig.axes:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "tight layout not applied" would print into the page
            fig.tight_layout()
    return fig


def book_figure(func: _F) -> _F:
    """Decorator of every figure function: draw under :data:`BOOK_RC`, then :func:`fit_to_column`.

    The wrapped function returns a Figure (or an Axes, whose figure is fitted).

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> @book_figure
    ... def wide():
    ...     return plt.figure(figsize=(16, 3))
    >>> bool(wide().get_figwidth() <= MAX_WIDTH_IN)
    True
    """

    @functools.wraps(func)
    def draw(*args: Any, **kwargs: Any) -> Any:
        with plt.rc_context(BOOK_RC):
            out = func(*args, **kwargs)
            fig = out if isinstance(out, Figure) else getattr(out, "figure", None)
            if isinstance(fig, Figure):
                fit_to_column(fig)
        return out

    draw.__book_figure__ = True  # type: ignore[attr-defined]
    return draw  # type: ignore[return-value]


_RAW = re.compile(r"(?<![\w$\\{])[A-Za-z][A-Za-z0-9]*_[A-Za-z0-9_]+")


def raw_names(fig: Figure) -> list[str]:
    """Texts of ``fig`` that contain a raw identifier such as ``o1_frac_dominant`` (outside $math$).

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots()
    >>> _ = ax.set_xlabel("gamma_corr")
    >>> _ = ax.set_ylabel(r"$\\gamma_{\\rm data}$")
    >>> raw_names(fig)
    ['gamma_corr']
    """
    found = []
    for text in _texts(fig):
        plain = re.sub(r"\$[^$]*\$", "", text.get_text())
        found += _RAW.findall(plain)
    return found


def plain_number(value: Any, *, digits: int = 4) -> str:
    """A number as a reader writes it: fixed decimals, thousands separated, never ``1e-05``.

    Integers (and whole floats of 1,000 or more) keep no decimals; anything that is not a real
    number is returned as ``str(value)``.

    Examples
    --------
    >>> [plain_number(v) for v in (3, 0.123456, 1.2e-7, 12345.6, float("nan"), True, "mixture")]
    ['3', '0.1235', '0.0000', '12,346', 'nan', 'True', 'mixture']
    """
    import numbers

    import numpy as np

    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        return str(value)
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    v = float(value)
    if not np.isfinite(v):
        return str(v)
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def stats_table(stats: Any, *, column: str = "value", digits: int = 4) -> Any:
    """A mapping of statistics as a one-column table of :func:`plain_number` strings.

    Examples
    --------
    >>> stats_table({"rho": 0.51234, "p_mantel": 2e-9, "n_pairs": 45}).loc["p_mantel", "value"]
    '0.0000'
    """
    import pandas as pd

    return pd.Series({k: plain_number(v, digits=digits) for k, v in dict(stats).items()}).to_frame(column)
