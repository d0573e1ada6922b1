"""Ablation of AMSRM's side information and of how it is fused, plus per-field importance.

    amsrm experiment ablation --datasets ml-100k beauty --seeds 0 1 2

Variants (all AMSRM, same init idea: every variant starts as the id-only model):
- ``none``: no side information (= SASRec-CE with AMSRM's window);
- ``item``, ``behaviour``, ``user``: one side field group alone;
- ``all``: every group, fused as in the paper (concat, then a linear projection);
- ``all-sum``, ``all-gated``: every group, fused by (gated) addition (``AMSRMConfig.fusion``);
- ``all-attention``: every group in the attention scores only, not in the values (DIF-SR's idea).
The variant with the best mean *validation* NDCG@10 is reported as the one chosen for the data
set (``none`` first, so side information has to beat the id-only model to be chosen).
Groups a data set lacks are switched off in every variant (Beauty has item fields only),
so a variant left with no side information is skipped and ``all`` equal to ``item`` is
trained once (the two share a run key).

Writes ``results/<dataset>-ablation.json`` (one entry per variant, with the mean ±
std of each field's importance under ``"field_importance"``), ``results/<dataset>-
ablation.md``, ``figures/<dataset>-ablation.png`` (test NDCG@10 and HR@10 per
variant) and ``figures/<dataset>-field-importance.png`` (one panel per fused variant).
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from amsrm_core.batching import training_windows
from amsrm_core.experiments import plots
from amsrm_core.experiments.common import DatasetRuns, Job, Options, Outcome, model_overrides, summary_entry
from amsrm_core.experiments.grids import select_best
from amsrm_core.experiments.store import RunStore
from amsrm_core.models.amsrm import AMSRM
from amsrm_core.report import results_table
from amsrm_core.results import write_results
from amsrm_core.runner import SeedRun
from amsrm_core.schema import InteractionData
from amsrm_core.splits import Split

_OFF = {"use_item_fields": False, "use_behaviour": False, "use_user_fields": False}
_ALL = dict.fromkeys(_OFF, True)
VARIANTS: dict[str, dict] = {
    "none": _OFF,
    "item": {**_OFF, "use_item_fields": True},
    "behaviour": {**_OFF, "use_behaviour": True},
    "user": {**_OFF, "use_user_fields": True},
    "all": {**_ALL, "fusion": "concat"},
    "all-sum": {**_ALL, "fusion": "sum"},
    "all-gated": {**_ALL, "fusion": "gated"},
    "all-attention": {**_ALL, "fusion": "attention"},
}
FIGURE_METRICS = ("ndcg@10", "hr@10")


def effective_variants(data: InteractionData, wanted: list[str]) -> dict[str, dict]:
    """Each wanted variant's overrides with the groups this data set lacks switched off.

    A variant that comes down to ``none`` is dropped; two that come down to the same config
    (``all`` and ``item`` on Beauty, which has only item fields) share one run key, so the
    run store trains them once.
    """
    present = {"use_item_fields": bool(data.item_fields), "use_behaviour": len(data.behaviour_vocab) > 2,
               "use_user_fields": bool(data.user_fields)}
    out = {}
    for variant in wanted:
        overrides = dict(VARIANTS[variant])
        for group, has in present.items():
            overrides[group] = overrides[group] and has
        if variant == "none" or any(overrides[k] for k in present):
            out[variant] = overrides
    return out


def _field_blocks(model: AMSRM) -> dict[str, torch.Tensor]:
    """The (d_model, d_side) weight that maps each field into the representation (concat or sum); for
    "attention", a (1, 1) tensor holding Σ over blocks of ‖W_q,f‖·‖W_k,f‖, the scale of its score term."""
    d, ds = model.config.d_model, model.config.d_side
    names = model.side_field_names()
    if model.config.fusion == "attention":
        def norm(layer: nn.Module) -> torch.Tensor:
            return cast(nn.Linear, layer).weight.norm()

        scale = {n: sum((norm(a.side_query[i]) * norm(a.side_key[i]) for a in model.attentions()),
                        torch.zeros(())) for i, n in enumerate(names)}
        return {n: v.reshape(1, 1) for n, v in scale.items()}
    item, event = [n for n in names if n.startswith("item.")], [n for n in names if not n.startswith("item.")]
    if model.config.fusion == "concat":
        concat = ((item, model.item_proj), (event, model.splice_proj))  # a group without fields has none
        return {n: proj.weight[:, d + i * ds:d + (i + 1) * ds] for fields, proj in concat if proj is not None
                for i, n in enumerate(fields)}
    summed = ((item, model.item_sum), (event, model.splice_sum))
    return {n: cast(nn.Linear, fused.project[i]).weight for fields, fused in summed if fused is not None
            for i, n in enumerate(fields)}


@torch.no_grad()
def field_importance(model: AMSRM, split: Split, batch_size: int = 512) -> dict[str, float]:
    """How much ``model`` reads each active side field, over every training event of ``split``.

    - ``"gated"`` fusion: the mean gate of the field (0 … 1);
    - ``"concat"`` / ``"sum"``: ‖W_f‖_F · mean ‖e_f‖, the Frobenius norm of the field's block
      of the projection times the mean norm of its embedding: the typical size of the field's
      term in the representation (zero at init, since the blocks start at zero);
    - ``"attention"``: Σ_blocks ‖W_q,f‖·‖W_k,f‖ · mean ‖e_f‖², the typical size of its score term.
    Compare fields within one variant; the scales of the fusions differ.  Id-only models: ``{}``.
    """
    names = model.side_field_names() if isinstance(model, AMSRM) else []
    if not names:
        return {}
    model.eval()
    device = model.item_id.weight.device
    gated = model.config.fusion == "gated"
    blocks = {} if gated else {n: float(w.norm()) for n, w in _field_blocks(model).items()}
    windows = training_windows(split, model.config.max_len)
    totals, count = dict.fromkeys(names, 0.0), 0
    for lo in range(0, len(windows), batch_size):
        batch = {k: v.to(device) for k, v in windows.batch(slice(lo, lo + batch_size)).items()}
        present = batch["item_seq"] != 0  # (B, T)
        count += int(present.sum())
        power = 2 if model.config.fusion == "attention" else 1  # a score term is quadratic in the embedding
        values = (model.field_gates(batch) if gated  # each (B, T)
                  else {n: e.norm(dim=-1) ** power for n, e in model.side_embeddings(batch).items()})
        for n in names:
            totals[n] += float(values[n][present].sum())
    return {n: totals[n] / max(count, 1) * blocks.get(n, 1.0) for n in names}


def _importance(run: SeedRun, split: Split) -> dict:
    if not isinstance(run.model, AMSRM):
        raise TypeError(f"the ablation measures AMSRM's fields, not {type(run.model).__name__}'s")
    return {"field_importance": field_importance(run.model, split)}


def run_ablation(options: Options, variants: list[str] | None = None) -> Outcome:
    store, outcome = RunStore(options.runs_dir), Outcome()
    for dataset in options.datasets:
        runs = DatasetRuns("ablation", dataset, options, store, outcome)
        chosen = effective_variants(runs.data, variants or list(VARIANTS))
        skipped = [v for v in variants or VARIANTS if v not in chosen]
        if skipped:
            print(f"ablation {runs.name}: skipping {', '.join(skipped)} (no such side information)")
        entries, finished = {}, {}
        for variant, flags in chosen.items():
            overrides = model_overrides("amsrm", options.model_set, flags)
            jobs = [Job(variant, "amsrm", overrides, runs.train_config(), s) for s in options.seeds]
            records = runs.run(jobs, variant, extra=_importance)
            if records is not None:
                entries[variant], finished[variant] = summary_entry(jobs[0], records), records
        if options.dry_run or not entries:
            continue
        selected = list(finished)[select_best(list(finished.values()))]
        print(f"ablation {runs.name}: chosen on validation NDCG@10: {selected}")
        outcome.outputs += _write(runs, entries, options, selected)
    return outcome


def _selection(entries: dict[str, dict], selected: str) -> str:
    """The chosen variant, as the table's reader needs it: validation that chose, test against none."""
    def ndcg(variant: str, split: str) -> float:
        return entries[variant][split]["ndcg@10"]["mean"]
    line = (f"Chosen on validation NDCG@10 (mean over seeds): **{selected}** (validation "
            f"{ndcg(selected, 'valid_metrics'):.4f}, test {ndcg(selected, 'metrics'):.4f}")
    if "none" in entries and selected != "none":
        line += f", {ndcg(selected, 'metrics') / ndcg('none', 'metrics') - 1:+.1%} over `none` on test"
    return line + ").\n"


def _write(runs: DatasetRuns, entries: dict[str, dict], options: Options, selected: str) -> list:
    name, results, figures = runs.name, options.out_dir / "results", options.out_dir / "figures"
    path = results / f"{name}-ablation.json"
    for variant, entry in entries.items():
        write_results(path, name, f"{options.protocol}-full", runs.split.describe(), variant, entry)
    table = results / f"{name}-ablation.md"
    table.write_text(f"# {name}: AMSRM side information and fusion ablation\n\n"
                     + results_table(path, ("ndcg@10", "hr@10", "ndcg@20", "mrr@10")) + "\n\n"
                     + _selection(entries, selected))
    outputs = [path, table, plots.bars(
        {m.upper(): {v: e["metrics"][m] for v, e in entries.items()} for m in FIGURE_METRICS},
        figures / f"{name}-ablation.png", f"{name}: ablation (test, mean ± std over seeds)", "score")]
    importance = {v: e["field_importance"] for v, e in entries.items() if e.get("field_importance")}
    importance = {v: x for v, x in importance.items() if v.startswith("all")} or importance  # fused ones
    if importance:
        outputs.append(plots.bars(importance, figures / f"{name}-field-importance.png",
                                  f"{name}: field importance (gated: mean gate; concat, sum: "
                                  "‖W_f‖·mean‖e_f‖)", "importance"))
    return outputs
