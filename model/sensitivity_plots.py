"""Plots of sensitivity analyses: the tornado chart of :func:`model.sensitivity.parameter_sensitivity`.

Kept apart from :mod:`model.sensitivity` (the computations) to keep that module small; the chart
takes the table that function returns. matplotlib is imported only when a plot is drawn.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["tornado_plot"]


def tornado_plot(table: pd.DataFrame, top: int = 15, ax=None):
    """Horizontal tornado chart of :func:`parameter_sensitivity` output (top ``top`` rows)."""
    import matplotlib.pyplot as plt

    import textwrap

    df = table.head(top).iloc[::-1]
    p0 = table.attrs.get("posterior", float(df.posterior.iloc[0]) if len(df) else 0.0)
    labels = [textwrap.fill(f"P({r.variable}={r.state}" + (f" | {r.parent_config})" if r.parent_config else ")")
                            + f" = {r.theta:.3g}", 48, subsequent_indent="    ") for r in df.itertuples()]
    if ax is None:
        lines = sum(label.count("\n") + 1 for label in labels)
        _, ax = plt.subplots(figsize=(10, 0.22 * lines + 0.25 * len(df) + 1.5))
    y = np.arange(len(df))
    lo = np.minimum(df.p_low, df.p_high)
    hi = np.maximum(df.p_low, df.p_high)
    ax.barh(y, hi - lo, left=lo, color="#4C72B0", alpha=0.8)
    ax.axvline(p0, color="k", lw=1)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel(f"P({table.attrs.get('target', '')}={table.attrs.get('state', '')} | e)")
    span_lo = min(float(lo.min()), p0) if len(df) else 0.0
    span_hi = max(float(hi.max()), p0) if len(df) else 1.0
    pad = max(0.02, 0.1 * (span_hi - span_lo))
    ax.set_xlim(max(0.0, span_lo - pad), min(1.0, span_hi + pad))
    ax.set_title(f"Parameter sensitivity ({table.attrs.get('method', '')})", fontsize=10)
    ax.figure.tight_layout()
    return ax
