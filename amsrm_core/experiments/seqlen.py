"""Sequence length, the paper's figure 5: AMSRM and SASRec-CE at window n ∈ {20, 30, 50, 100}, K = 10.

    amsrm experiment seqlen --datasets ml-100k beauty --seeds 0 1 2

Writes ``results/<dataset>-seqlen.json`` (the project's results shape, one entry per
``"<model> n=<n>"``), ``results/<dataset>-seqlen.md`` and ``figures/<dataset>-seqlen.png``
(NDCG@10 and HR@10 against n, one line per model) under ``--out-dir``.
"""

from __future__ import annotations

from amsrm_core.experiments import plots
from amsrm_core.experiments.common import DatasetRuns, Job, Options, Outcome, model_overrides, summary_entry
from amsrm_core.experiments.store import RunStore
from amsrm_core.report import results_table
from amsrm_core.results import write_results

LENGTHS = (20, 30, 50, 100)
MODELS = ("amsrm", "sasrec-ce")
FIGURE_METRICS = {"ndcg@10": "NDCG@10", "hr@10": "HR@10"}


def run_seqlen(options: Options, models: list[str] | None = None,
               lengths: list[int] | None = None) -> Outcome:
    models, lengths = models or list(MODELS), lengths or list(LENGTHS)
    store, outcome = RunStore(options.runs_dir), Outcome()
    for dataset in options.datasets:
        runs = DatasetRuns("seqlen", dataset, options, store, outcome)
        entries: dict[str, dict[int, dict]] = {}
        for model in models:
            for n in lengths:
                overrides = model_overrides(model, options.model_set, {"max_len": n})
                label = f"{model} n={n}"
                jobs = [Job(label, model, overrides, runs.train_config(), s) for s in options.seeds]
                records = runs.run(jobs, label)
                if records is not None:
                    entries.setdefault(model, {})[n] = summary_entry(jobs[0], records)
        if options.dry_run or not entries:
            continue
        name, results = runs.name, options.out_dir / "results"
        path = results / f"{name}-seqlen.json"
        for model, by_length in entries.items():
            for n, entry in by_length.items():
                write_results(path, name, f"{options.protocol}-full", runs.split.describe(), f"{model} n={n}",
                              entry)
        table = results / f"{name}-seqlen.md"
        table.write_text(f"# {name}: sequence length n\n\n"
                         + results_table(path, ("ndcg@10", "hr@10", "mrr@10")) + "\n")
        outcome.outputs += [path, table, _figure(name, entries, options)]
    return outcome


def _figure(name: str, entries: dict[str, dict[int, dict]], options: Options):
    panels = {}
    for metric, title in FIGURE_METRICS.items():
        panels[title] = {m: [(n, e["metrics"][metric]) for n, e in sorted(by_n.items())]
                         for m, by_n in entries.items()}
    return plots.lines(panels, options.out_dir / "figures" / f"{name}-seqlen.png",
                       f"{name}: window length n (test, mean ± std over seeds)", "window length n")
