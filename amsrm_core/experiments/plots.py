"""PNG figures for the experiments (matplotlib, Agg backend: no display needed).

matplotlib is imported on first use (it is the optional ``plots`` extra), so the
rest of the ``amsrm`` command line works without it.  Every figure shows the mean
over seeds with the sample standard deviation as error bars.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from amsrm.errors import ConfigError


def _pyplot():
    try:
        import matplotlib
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ConfigError("figures need matplotlib: pip install -e '.[plots]'") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path


def _panels(n: int, title: str):
    plt = _pyplot()
    fig, axes = plt.subplots(1, n, figsize=(max(5.0, 4.5 * n), 4.0), layout="constrained", squeeze=False)
    fig.suptitle(title)
    return fig, axes[0]


Series = Mapping[str, Sequence[tuple[float, dict]]]  # name → (x, {"mean", "std"}) points


def lines(panels: Mapping[str, Series], path: Path, title: str, xlabel: str) -> Path:
    """One panel per metric (its name is the y label), in it one line per model through
    ``(x, {"mean", "std"})`` points: metric vs K, metric vs window length n."""
    fig, axes = _panels(len(panels), title)
    for ax, (ylabel, series) in zip(axes, panels.items(), strict=True):
        for name, points in series.items():
            xs = [x for x, _ in points]
            ax.errorbar(xs, [s["mean"] for _, s in points], yerr=[s["std"] for _, s in points], marker="o",
                        capsize=3, label=name)
            ax.set_xticks(xs)
        ax.set(xlabel=xlabel, ylabel=ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return _save(fig, path)


def bars(panels: dict[str, dict[str, dict]], path: Path, title: str, ylabel: str) -> Path:
    """One panel per name, in it one bar per label with ``{"mean", "std"}``: ablation, field importance."""
    fig, axes = _panels(len(panels), title)
    for ax, (name, values) in zip(axes, panels.items(), strict=True):
        ax.bar(range(len(values)), [v["mean"] for v in values.values()],
               yerr=[v["std"] for v in values.values()], capsize=3, color="tab:blue")
        ax.set_xticks(range(len(values)), list(values), rotation=30, ha="right", fontsize="small")
        ax.set(title=name, ylabel=ylabel)
        ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def curves(panels: Mapping[str, Mapping[str, Sequence[tuple[float, float]]]], path: Path, title: str,
           xlabel: str) -> Path:
    """One panel per quantity (its name is the y label), one line per run through ``(x, y)`` points:
    the per-epoch training records (``amsrm results curve``)."""
    fig, axes = _panels(len(panels), title)
    for ax, (ylabel, series) in zip(axes, panels.items(), strict=True):
        for name, points in series.items():
            ax.plot([x for x, _ in points], [y for _, y in points], marker=".", label=name)
        ax.set(xlabel=xlabel, ylabel=ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return _save(fig, path)
