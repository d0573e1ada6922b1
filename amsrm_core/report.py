"""Markdown tables from results files, so docs quote numbers instead of retyping them."""

from __future__ import annotations

from pathlib import Path

import orjson

from amsrm.errors import ConfigError

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


def training_curves(path: str | Path) -> dict[str, list[dict]]:
    """Per run, its per-epoch record (``TrainResult.record()``): ``<model> seed <s>`` for a results
    file, ``<model>`` for a checkpoint (its folder or ``manifest.json``).  Runs recorded before
    the curves were kept have none and are left out."""
    path = Path(path)
    file = path / "manifest.json" if path.is_dir() else path
    if not file.is_file():
        raise ConfigError(f"{file}: no such results file or checkpoint manifest")
    doc = orjson.loads(file.read_bytes())
    if "models" in doc:  # a results file
        return {f"{name} seed {run['seed']}": run["curve"] for name, entry in doc["models"].items()
                for run in entry.get("runs", []) if run.get("curve")}
    training = doc.get("training") or {}
    return {doc.get("model", "model"): training["curve"]} if training.get("curve") else {}


def curve_table(curves: dict[str, list[dict]], metric: str = "ndcg@10") -> str:
    """A markdown table per run: epoch, training loss, ``metric`` on validation, seconds."""
    blocks = []
    for name, curve in curves.items():
        rows = [f"| {p['epoch']} | {p['loss']:.4f} | {p['valid'].get(metric, float('nan')):.4f} | "
                f"{p['seconds']:.1f} |" for p in curve]
        blocks.append("\n".join([f"{name}", "", f"| epoch | train loss | valid {metric} | seconds |",
                                 "|---|---|---|---|", *rows]))
    return "\n\n".join(blocks)
