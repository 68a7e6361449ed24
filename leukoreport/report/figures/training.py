"""Figures of training: the loss curves of one run and the curves of every run together."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator, PercentFormatter

from leukoreport.base.errors import LeukoError
from leukoreport.base.validation import require_columns
from leukoreport.report.figures import style
from leukoreport.report.figures.style import STYLE, WIDE_STYLE, has_values, required_key

__all__ = ["SEEDS_PER_ROW", "SEED_HISTORY_COLUMNS", "plot_loss_curves", "plot_seed_curves"]


def _phase_spans(history: pd.DataFrame) -> list[tuple[int, float, float]]:
    """(phase, first epoch, last epoch) for each phase in history order."""
    spans = []
    for phase, rows in history.groupby("phase", sort=False):
        spans.append((int(phase), float(rows["epoch"].min()), float(rows["epoch"].max())))
    return sorted(spans, key=lambda s: s[1])


def plot_loss_curves(history: pd.DataFrame, train_info: dict, out: str | Path) -> None:
    """Train/valid loss and valid accuracy over the global epoch axis, phases and best epochs marked."""
    needed = ["phase", "epoch", "train_loss", "valid_loss", "accuracy"]
    require_columns("history", history, needed, allow_empty=False)
    phases = required_key(train_info, "phases", "train.json")
    history = history.sort_values("epoch")
    epochs = history["epoch"].to_numpy(dtype=float)
    frozen = {int(p["phase"]): p.get("frozen") for p in phases if "phase" in p}

    def phase_name(phase: int) -> str:
        state = {True: " (frozen)", False: " (unfrozen)"}.get(frozen.get(phase), "")
        return f"phase {phase}{state}"

    colours = ["tab:purple", "tab:green", "tab:brown", "tab:pink"]
    with plt.rc_context(STYLE):
        fig, (ax_loss, ax_acc) = plt.subplots(
            2, 1, figsize=(8, 6.2), sharex=True, height_ratios=[3, 2], constrained_layout=True)
        ax_loss.plot(epochs, history["train_loss"], "o-", color="tab:blue", ms=4, label="train loss")
        ax_loss.plot(epochs, history["valid_loss"], "s-", color="tab:orange", ms=4,
                     label="valid loss")
        ax_acc.plot(epochs, history["accuracy"], "o-", color="tab:red", ms=4,
                    label="valid accuracy")
        has_train_acc = has_values(history, "train_accuracy")
        if has_train_acc:
            ax_acc.plot(epochs, pd.to_numeric(history["train_accuracy"], errors="coerce"), "^--",
                        color="tab:gray", ms=4, label="train accuracy (augmented batches)")

        spans = _phase_spans(history)
        strip = ax_loss.get_xaxis_transform()
        for (p1, _, end1), (p2, start2, _) in zip(spans, spans[1:]):
            boundary = (end1 + start2) / 2
            for ax in (ax_loss, ax_acc):
                ax.axvline(boundary, color="0.3", ls="--", lw=1.2)
            for text, dx, ha in ((f"\u2190 {phase_name(p1)}", -4, "right"),
                                 (f"{phase_name(p2)} \u2192", 4, "left")):
                ax_loss.annotate(text, xy=(boundary, 1.0), xycoords=strip, xytext=(dx, 3),
                                 textcoords="offset points", ha=ha, va="bottom",
                                 fontsize=10.5, color="0.15", annotation_clip=False)
        if len(spans) == 1:
            ax_loss.annotate(phase_name(spans[0][0]), xy=(0, 1.0), xycoords="axes fraction",
                             xytext=(0, 3), textcoords="offset points", ha="left",
                             va="bottom", fontsize=10.5, color="0.15")

        for i, p in enumerate(phases):
            best = p.get("best_epoch")
            row = history[history["epoch"] == best]
            if best is None or row.empty:
                continue
            colour = colours[i % len(colours)]
            label = f"restored best, phase {p.get('phase', i + 1)} (epoch {int(best)})"
            ax_loss.plot([best], [row["valid_loss"].iloc[0]], "*", ms=16, color=colour,
                         mec="black", mew=0.7, zorder=5, label=label)
            ax_acc.plot([best], [row["accuracy"].iloc[0]], "*", ms=16, color=colour,
                        mec="black", mew=0.7, zorder=5)
            for ax in (ax_loss, ax_acc):
                ax.axvline(best, color=colour, ls=":", lw=1.2)

        ax_loss.set_ylabel("cross-entropy loss")
        handles = ax_loss.get_legend_handles_labels()[0]
        handles = handles[:2] + ax_acc.get_legend_handles_labels()[0] + handles[2:]
        fig.legend(handles=handles, loc="outside lower center", ncol=2, frameon=False)
        ax_acc.set_ylabel("accuracy" if has_train_acc else "valid accuracy")
        ax_acc.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax_acc.set_xlabel("epoch (both phases)")
        ax_acc.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax_acc.set_xlim(epochs.min() - 0.5, epochs.max() + 0.5)
        for ax in (ax_loss, ax_acc):
            ax.grid(True, alpha=0.3)
        seed = train_info.get("seed")
        fig.suptitle("Training curves" + (f", seed {seed}" if seed is not None else ""),
                     fontsize=13)
        style.save_figure(fig, out)


SEED_HISTORY_COLUMNS = ["phase", "epoch", "train_loss", "valid_loss", "accuracy"]
SEEDS_PER_ROW = 8


def plot_seed_curves(histories: dict[int | str, pd.DataFrame], out: str | Path) -> None:
    """Loss and accuracy of every run over the global epoch axis, one colour per run,
    train dashed and valid solid, each run's phase boundary dotted.

    Keys are seeds (labelled 'seed N', sorted) or run labels such as 'split 42 · seed 1' (kept in order)."""
    if not histories:
        raise LeukoError("histories: no seeds")
    for seed, history in histories.items():
        require_columns(f"history of {_run_name(seed)}", history, SEED_HISTORY_COLUMNS, allow_empty=False)
    seeds = sorted(histories) if all(isinstance(k, int) for k in histories) else list(histories)
    palette = plt.get_cmap("tab10" if len(seeds) <= 10 else "tab20").colors
    seed_rows = math.ceil(len(seeds) / SEEDS_PER_ROW)
    seed_cols = math.ceil(len(seeds) / seed_rows)
    key_rows = seed_rows + 1
    with plt.rc_context(WIDE_STYLE):
        fig = plt.figure(figsize=(10, 3.35 + 0.33 * key_rows), layout="constrained")
        grid = fig.add_gridspec(2, 2, height_ratios=[1, 0.125 * key_rows])
        ax_loss, ax_acc = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])
        ax_key = fig.add_subplot(grid[1, :])
        ax_key.axis("off")
        for i, seed in enumerate(seeds):
            history = histories[seed].sort_values("epoch")
            colour = palette[i % len(palette)]
            epochs = history["epoch"].to_numpy(dtype=float)
            marker = "o" if len(history) <= 10 else ""  # few epochs: show the points too
            ax_loss.plot(epochs, history["train_loss"], marker + "--", color=colour, lw=1.4, ms=3)
            ax_loss.plot(epochs, history["valid_loss"], marker + "-", color=colour, lw=1.8, ms=3)
            ax_acc.plot(epochs, history["accuracy"], marker + "-", color=colour, lw=1.8, ms=3)
            if has_values(history, "train_accuracy"):
                ax_acc.plot(epochs, pd.to_numeric(history["train_accuracy"], errors="coerce"),
                            marker + "--", color=colour, lw=1.4, ms=3)
            spans = _phase_spans(history)
            for (_, _, end1), (_, start2, _) in zip(spans, spans[1:]):
                for ax in (ax_loss, ax_acc):
                    ax.axvline((end1 + start2) / 2, color=colour, ls=":", lw=1.2, alpha=0.7)
        ax_loss.set_title("loss")
        ax_loss.set_ylabel("cross-entropy loss")
        ax_acc.set_title("accuracy")
        ax_acc.set_ylabel("accuracy")
        ax_acc.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        for ax in (ax_loss, ax_acc):
            ax.set_xlabel("epoch (all phases)")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(True, alpha=0.3)
        patches = [Patch(color=palette[i % len(palette)], label=_run_name(s))
                   for i, s in enumerate(seeds)]
        # the legend fills column by column: order the patches so that its rows read in seed order
        seed_handles = [patches[r * seed_cols + c] for c in range(seed_cols)
                        for r in range(seed_rows) if r * seed_cols + c < len(patches)]
        style_handles = [Line2D([], [], color="0.2", ls="-", lw=1.8, label="valid"),
                         Line2D([], [], color="0.2", ls="--", lw=1.4,
                                label="train (augmented batches)"),
                         Line2D([], [], color="0.2", ls=":", lw=1.2, label="phase boundary")]
        # two legend rows under the panels: seeds (colour), then line styles
        seed_legend = ax_key.legend(handles=seed_handles, loc="upper center",
                                    ncol=seed_cols, frameon=False, handlelength=1.6,
                                    columnspacing=1.4, borderaxespad=0.0)
        ax_key.add_artist(seed_legend)
        ax_key.legend(handles=style_handles, loc="lower center", ncol=3, frameon=False,
                      handlelength=2.2, columnspacing=1.6, borderaxespad=0.0)
        noun = "seed" if all(_run_name(k).startswith("seed ") for k in seeds) else "run"
        fig.suptitle(f"Training curves of {len(seeds)} {noun}{'s' * (len(seeds) != 1)}", fontsize=14)
        style.save_figure(fig, out)


def _run_name(key: int | str) -> str:
    """'seed 7' for a seed number, the label itself for a run label."""
    return f"seed {key}" if isinstance(key, int) else str(key)
