"""PNG plots of an evaluation report (``asr eval --plot DIR``); needs matplotlib."""

from __future__ import annotations

import math
import os

import jiwer

from asr.evaluate import Report


def pyplot():
    """matplotlib's pyplot on the Agg backend (files, no display); RuntimeError with the
    install command when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("plots need matplotlib: pip install matplotlib") from None
    return plt


def write_plots(report: Report, folder: str, latencies: dict[str, list[float]] | None = None) -> list[str]:
    """Write WER by subset, the per-utterance CER distribution and (for streams) a
    latency histogram into ``folder``; returns the paths written."""
    plt = pyplot()
    os.makedirs(folder, exist_ok=True)
    paths = []

    names = [name or "-" for name in report.subsets] + ["all"]
    wers = [s.wer for s in report.subsets.values()] + [report.overall.wer]
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(names)), 3.5))
    # A subset with no reference words has no WER to draw (inf when words were said there).
    heights = [100 * w if math.isfinite(w) else 0.0 for w in wers]
    bars = ax.bar(names, heights, color=["#4c72b0"] * (len(names) - 1) + ["#dd8452"])
    ax.bar_label(
        bars, labels=[f"{100 * w:.1f}" if math.isfinite(w) else "n/a" for w in wers], padding=2, fontsize=8
    )
    ax.set_ylabel("WER (%)")
    ax.set_title("Word error rate by subset")
    ax.tick_params(axis="x", labelrotation=20)
    paths.append(_save(fig, plt, folder, "wer_by_subset.png"))

    cers = [jiwer.cer(r["ref"], r["hyp"] or "") for r in report.rows if r["ref"]]
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.hist([100 * min(c, 1.5) for c in cers], bins=30, color="#4c72b0")
    ax.set_xlabel("CER per utterance (%), capped at 150")
    ax.set_ylabel("utterances")
    ax.set_title(f"CER distribution ({len(cers)} utterances)")
    paths.append(_save(fig, plt, folder, "cer_distribution.png"))

    if latencies:
        fig, ax = plt.subplots(figsize=(5.5, 3.5))
        top = max((max(v) for v in latencies.values() if v), default=1.0)
        bins = [top * i / 30 for i in range(31)]
        for label, values in latencies.items():
            ax.hist(values, bins=bins, alpha=0.6, label=f"{label} ({len(values)} words)")
        ax.set_xlabel("seconds after the word ends in the audio")
        ax.set_ylabel("words")
        ax.set_title("Streaming latency")
        ax.legend()
        paths.append(_save(fig, plt, folder, "latency.png"))
    return paths


def _save(fig, plt, folder: str, name: str) -> str:
    path = os.path.join(folder, name)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
