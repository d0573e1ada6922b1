"""Markdown tables from results files, so docs quote numbers instead of retyping them."""

from __future__ import annotations

from pathlib import Path

import orjson

DEFAULT_METRICS = ("ndcg@5", "ndcg@10", "ndcg@20", "hr@10", "recall@20", "precision@10", "mrr@10")


def results_table(path: str | Path, metrics: tuple[str, ...] = DEFAULT_METRICS) -> str:
    """One row per model: mean ± std over seeds of each metric (test cases)."""
    doc = orjson.loads(Path(path).read_bytes())
    header = "| model | seeds | " + " | ".join(metrics) + " |"
    lines = [header, "|" + "---|" * (len(metrics) + 2)]
    ranked = sorted(doc["models"].items(), key=lambda kv: -kv[1]["metrics"]["ndcg@10"]["mean"])
    for name, entry in ranked:
        cells = [f"{entry['metrics'][m]['mean']:.4f} ± {entry['metrics'][m]['std']:.4f}" for m in metrics]
        lines.append(f"| {name} | {len(entry['seeds'])} | " + " | ".join(cells) + " |")
    caption = (f"{doc['dataset']}, protocol {doc['protocol']}, commit {doc['commit'][:12]}, "
               f"{doc['date']}, {doc['machine']}")
    return "\n".join([*lines, "", caption])
