"""The standard figures of randomized smoothing.

* :func:`plot_certified_accuracy` — certified accuracy against the radius, with each curve's
  radius cap.
* :func:`plot_radius_vs_n` — certified radius against the number of samples n, with the cap
  σΦ⁻¹(α^{1/n}).
* :func:`plot_matrix` — a heatmap of a σ_train × σ_test table.
"""

from __future__ import annotations

import numpy as np

from ..theory.bounds import radius_cap


def plot_certified_accuracy(ax, r_grid, curves: dict, caps: dict | None = None):
    """Certified accuracy against the radius, one line per entry of ``curves`` (label ->
    accuracies on ``r_grid``); ``caps`` (label -> radius) draws each curve's radius cap dotted."""
    for k, (label, acc) in enumerate(curves.items()):
        line, = ax.plot(r_grid, acc, lw=2, label=label, color=f"C{k}")
        if caps and label in caps:
            ax.axvline(caps[label], color=line.get_color(), ls=":", lw=1)
    ax.set_xlabel(r"radius $r$ ($\ell_2$)")
    ax.set_ylabel("certified accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0, r_grid[-1])
    ax.grid(alpha=0.3)
    ax.legend()


def plot_radius_vs_n(ax, sigma: float, n_values, radii: dict, n0: int | None = None):
    """Certified radius against the number n of estimation samples, with the cap σΦ⁻¹(α^{1/n}).

    ``radii``: alpha -> array (images × len(n_values)) of certified radii (0: abstained). Thin
    lines: images; thick: the median; dashed: the cap of that α.
    """
    n_values = np.asarray(n_values, dtype=float)
    n_dense = np.logspace(np.log10(n_values.min()), np.log10(n_values.max()), 200)
    for k, (alpha, r) in enumerate(sorted(radii.items(), reverse=True)):
        color = f"C{k}"
        for row in np.atleast_2d(r):
            ax.plot(n_values, row, color=color, lw=0.6, alpha=0.35)
        ax.plot(n_values, np.median(r, axis=0), "o-", color=color, lw=2, label=rf"median, $\alpha$ = {alpha:g}")
        ax.plot(n_dense, radius_cap(sigma, n_dense, alpha), "--", color=color, lw=1.2,
                label=rf"cap $\sigma\Phi^{{-1}}(\alpha^{{1/n}})$, $\alpha$ = {alpha:g}")
    ax.set_xscale("log")
    ax.set_xlabel("estimation samples $n$" + (f" (selection: $n_0$ = {n0})" if n0 else ""))
    ax.set_ylabel("certified radius")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def plot_matrix(ax, values, sigmas, title: str, fmt: str = "{:.2f}", vmax=None):
    """Heatmap of a σ_train (rows) × σ_test (columns) table, each cell annotated."""
    values = np.asarray(values, dtype=float)
    im = ax.imshow(values, cmap="viridis", vmin=0, vmax=vmax if vmax is not None else np.nanmax(values))
    ticks = [f"{s:g}" for s in sigmas]
    ax.set_xticks(range(len(sigmas)), ticks)
    ax.set_yticks(range(len(sigmas)), ticks)
    ax.set_xlabel(r"$\sigma_{\mathrm{test}}$ (smoothing)")
    ax.set_ylabel(r"$\sigma_{\mathrm{train}}$ (augmentation)")
    ax.set_title(title)
    mid = 0.5 * (im.norm.vmin + im.norm.vmax)
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, fmt.format(v), ha="center", va="center", color="black" if v > mid else "white", fontsize=9)
    return im
