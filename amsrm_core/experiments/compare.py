"""Model comparison, the paper's figures 2–4: every model on each data set, 3 seeds.

    amsrm experiment compare --datasets ml-100k beauty --seeds 0 1 2 [--models …] [--tune]

Per data set it writes, under ``--out-dir`` (docs by default):
- ``results/<dataset>.json``: one entry per model through ``write_results`` (the
  project's results shape; ``--tune`` adds a ``"tuning"`` block to each entry);
- ``results/<dataset>-compare.md``: test P/R/NDCG@{5,10,15,20}, mean ± std over
  seeds, the relative change of AMSRM against each baseline, and the tuning winners;
- ``figures/<dataset>-{precision,recall,ndcg}-vs-k.png``: metric vs K, one line per model.
With ``--tune`` every model first runs its grid (``grids.py``) on the tuning seeds
and the config with the best validation NDCG@10 runs on every seed.
"""

from __future__ import annotations

from pathlib import Path

from amsrm_core.experiments import plots
from amsrm_core.experiments.common import (
    DatasetRuns,
    Job,
    Options,
    Outcome,
    markdown_table,
    mean_std,
    model_overrides,
    summary_entry,
)
from amsrm_core.experiments.grids import grid_points, point_label, select_best, split_point
from amsrm_core.experiments.store import RunStore
from amsrm_core.metrics import KS
from amsrm_core.models import MODELS
from amsrm_core.results import git_commit, write_results
from amsrm_core.training.trainer import SELECTION_METRIC, TrainConfig

FIGURE_METRICS = {"precision": "Precision", "recall": "Recall", "ndcg": "NDCG"}
REFERENCE = "amsrm"  # the model whose relative change against every baseline is tabled


def _tuned_job(runs: DatasetRuns, model: str, tune_seeds: list[int]
               ) -> tuple[tuple[dict, TrainConfig], dict] | None:
    """Run ``model``'s grid on the tuning seeds: the winner's (overrides, train config), the tuning record.

    None on a dry run whose grid is not finished yet (the winner is not known).
    """
    points = grid_points(model)
    jobs = []
    for point in points:
        model_part, train_part = split_point(point)
        overrides = model_overrides(model, runs.options.model_set, model_part)
        jobs += [Job(f"{model} {point_label(point)}", model, overrides, runs.train_config(**train_part), s)
                 for s in tune_seeds]
    records = runs.run(jobs, f"{model} tuning")
    if records is None:
        return None
    n = len(tune_seeds)
    per_point = [records[i * n:(i + 1) * n] for i in range(len(points))]
    best = select_best(per_point)
    tuning = {"selection": f"highest mean validation {SELECTION_METRIC} over seeds {tune_seeds}",
              "selected": points[best],
              "grid": [{"config": p, f"valid_{SELECTION_METRIC}": [r["valid"][SELECTION_METRIC] for r in rs]}
                       for p, rs in zip(points, per_point, strict=True)]}
    return (jobs[best * n].overrides, jobs[best * n].train), tuning


def run_compare(options: Options, models: list[str] | None = None, tune: bool = False,
                tune_seeds: list[int] | None = None) -> Outcome:
    models, tune_seeds = models or list(MODELS), tune_seeds or options.seeds[:1]
    store, outcome = RunStore(options.runs_dir), Outcome()
    for dataset in options.datasets:
        runs = DatasetRuns("compare", dataset, options, store, outcome)
        entries: dict[str, dict] = {}
        for model in models:
            overrides, train, tuning = model_overrides(model, options.model_set), runs.train_config(), None
            if tune:
                tuned = _tuned_job(runs, model, tune_seeds)
                if tuned is None:  # dry run, grid unfinished: count the winner's other seeds
                    outcome.planned += len(set(options.seeds) - set(tune_seeds))
                    print(f"  then {model}: the winner × seeds {options.seeds}")
                    continue
                (overrides, train), tuning = tuned
            jobs = [Job(model, model, overrides, train, s) for s in options.seeds]
            records = runs.run(jobs, model)
            if records is None:
                continue
            entries[model] = summary_entry(jobs[0], records)
            if tuning:
                entries[model]["tuning"] = tuning
        if options.dry_run or not entries:
            continue
        outcome.outputs += write_compare(runs, entries, options.out_dir)
    return outcome


def write_compare(runs: DatasetRuns, entries: dict[str, dict], out_dir: Path) -> list[Path]:
    name, results = runs.name, out_dir / "results"
    path = results / f"{name}.json"
    for model, entry in entries.items():
        document = write_results(path, name, f"{runs.options.protocol}-full", runs.split.describe(), model,
                                 entry)
    outputs = [path, results / f"{name}-compare.md"]
    outputs[1].write_text(compare_markdown(name, entries, document))
    for metric, title in FIGURE_METRICS.items():
        series = {m: [(k, e["metrics"][f"{metric}@{k}"]) for k in KS] for m, e in entries.items()}
        outputs.append(plots.lines({f"{title}@K": series}, out_dir / "figures" / f"{name}-{metric}-vs-k.png",
                                   f"{name}: {title}@K (test, mean ± std over seeds)", "K"))
    return outputs


def _relative(ours: float, base: float) -> str:
    return f"{100.0 * (ours - base) / base:+.1f}%" if base > 0 else "n/a"


def compare_markdown(name: str, entries: dict[str, dict], document: dict) -> str:
    keys = [f"{m}@{k}" for m in FIGURE_METRICS for k in KS]
    seeds = next(iter(entries.values()))["seeds"]
    parts = [f"# {name}: model comparison\n",
             f"Test cases, full ranking, mean ± std over seeds {seeds}; protocol {document['protocol']}, "
             f"commit {git_commit()[:12]}, {document['date']}, {document['machine']}.\n",
             markdown_table(["model", *keys], [[m, *(mean_std(e["metrics"][k]) for k in keys)]
                                               for m, e in entries.items()])]
    if REFERENCE in entries:
        ours = entries[REFERENCE]["metrics"]
        rows = [[m, *(_relative(ours[k]["mean"], e["metrics"][k]["mean"]) for k in keys)]
                for m, e in entries.items() if m != REFERENCE]
        parts += [f"\n## Relative change of {REFERENCE} against each baseline\n",
                  "(mean of AMSRM − mean of baseline) / mean of baseline.\n",
                  markdown_table(["baseline", *keys], rows)]
    tuned = {m: e["tuning"] for m, e in entries.items() if "tuning" in e}
    if tuned:
        key = f"valid_{SELECTION_METRIC}"
        rows = [[m, point_label(t["selected"]),
                 "; ".join(f"{point_label(g['config'])}: " + ", ".join(f"{v:.4f}" for v in g[key])
                           for g in t["grid"])] for m, t in tuned.items()]
        parts += [f"\n## Hyper-parameter selection (validation {SELECTION_METRIC} only)\n",
                  markdown_table(["model", "selected", f"grid: validation {SELECTION_METRIC}"], rows)]
    return "\n".join(parts) + "\n"
