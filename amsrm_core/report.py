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


def k_table(path: str | Path, model: str) -> str:
    """Every metric at every K for one model: rows = metric, columns = K (mean ± std over seeds)."""
    doc = orjson.loads(Path(path).read_bytes())
    metrics = doc["models"][model]["metrics"]
    ks = sorted({int(key.split("@")[1]) for key in metrics})
    names = list(dict.fromkeys(key.split("@")[0] for key in metrics))
    lines = ["| metric | " + " | ".join(f"@{k}" for k in ks) + " |", "|" + "---|" * (len(ks) + 1)]
    for name in names:
        cells = [f"{metrics[f'{name}@{k}']['mean']:.4f} ± {metrics[f'{name}@{k}']['std']:.4f}" for k in ks]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
