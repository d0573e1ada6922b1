"""The experiment harness (amsrm experiment …) on tiny synthetic data, and AMSRM's fusion variants."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import orjson
import pytest
import torch

from amsrm.cli import build_parser, main
from amsrm_core.batching import case_windows, training_windows
from amsrm_core.data.synthetic import SyntheticConfig, generate_synthetic
from amsrm_core.experiments.ablation import VARIANTS, effective_variants, field_importance, run_ablation
from amsrm_core.experiments.common import Options
from amsrm_core.experiments.compare import run_compare
from amsrm_core.experiments.grids import GRIDS, grid_points, select_best
from amsrm_core.experiments.store import RunStore, run_key
from amsrm_core.features import FeatureSchema, feature_tables
from amsrm_core.metrics import KS
from amsrm_core.models import MODELS
from amsrm_core.models.amsrm import AMSRM, AMSRMConfig
from amsrm_core.splits import leave_one_out
from amsrm_core.training.trainer import TrainConfig

TINY = ["n_users=120", "n_items=200", "min_events=6", "max_events=15"]
SMALL_MODELS = ["d_model=16", "d_side=8", "n_blocks=1", "max_len=10"]
PNG = b"\x89PNG\r\n\x1a\n"
SIDE_FIELDS = ["item.category", "item.brand", "behaviour", "user.gender", "user.age_band"]


def _options(tmp_path: Path, seeds=(0,), **changes) -> Options:
    train = TrainConfig(epochs=1, patience=1, threads=1, progress=False)
    options = Options(datasets=["synthetic"], seeds=list(seeds), train=train, model_set=list(SMALL_MODELS),
                      synthetic=list(TINY), runs_dir=tmp_path / "runs", out_dir=tmp_path / "docs",
                      progress=False)
    return dataclasses.replace(options, **changes)


def test_default_folders_are_in_the_working_directory(tmp_path: Path, monkeypatch) -> None:
    """Runs and docs land where the command runs, never beside the source (site-packages once installed)."""
    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args(["experiment", "compare"])
    assert Path(args.runs_dir).resolve() == tmp_path / "runs" / "experiments"
    assert Path(args.out_dir).resolve() == tmp_path / "docs"
    assert Path(Options(datasets=[], seeds=[]).out_dir).resolve() == tmp_path / "docs"


def _flags(tmp_path: Path) -> list[str]:
    flags = ["--datasets", "synthetic", "--epochs", "1", "--patience", "1", "--no-progress",
             "--runs-dir", str(tmp_path / "runs"), "--out-dir", str(tmp_path / "docs")]
    for pair in TINY:
        flags += ["--synthetic", pair]
    for pair in SMALL_MODELS:
        flags += ["--set", pair]
    return flags


def _read(path: Path) -> dict:
    return orjson.loads(path.read_bytes())


@pytest.fixture(scope="module")
def tiny():
    data = generate_synthetic(SyntheticConfig(n_users=120, n_items=200, min_events=6, max_events=15))
    return data, leave_one_out(data)


def _amsrm(data, seed=0, **overrides) -> AMSRM:
    torch.manual_seed(seed)
    config = AMSRMConfig(max_len=10, d_model=16, d_side=8, **overrides)
    return AMSRM(config, FeatureSchema.from_data(data), feature_tables(data)).eval()


# --- run store ------------------------------------------------------------------------------------------


def test_run_key_is_stable_and_covers_the_config():
    spec = {"experiment": "compare", "dataset": "d", "model": "amsrm", "seed": 0, "config": {"a": 1, "b": 2}}
    reordered = {"seed": 0, "config": {"b": 2, "a": 1}, "model": "amsrm", "dataset": "d",
                 "experiment": "compare"}
    assert run_key(spec) == run_key(reordered) and len(run_key(spec)) == 16
    assert run_key(spec) != run_key({**spec, "config": {"a": 1, "b": 3}})
    assert run_key(spec) != run_key({**spec, "seed": 1})


def test_fields_added_later_join_the_key_only_when_set(tmp_path):
    """Runs stored before ``bucket_by_length`` existed keep their keys; turning it on changes the key."""
    from amsrm_core.experiments.common import DatasetRuns, Job, Outcome

    options = _options(tmp_path)
    runs = DatasetRuns("compare", "synthetic", options, RunStore(tmp_path / "runs"), Outcome())
    plain = runs.spec(Job("amsrm", "amsrm", {}, options.train, 0))
    on = dataclasses.replace(options.train, bucket_by_length=True)
    bucketed = runs.spec(Job("amsrm", "amsrm", {}, on, 0))
    assert "bucket_by_length" not in plain["train"] and bucketed["train"]["bucket_by_length"] is True
    assert run_key(plain) != run_key(bucketed)


def test_store_round_trip_is_atomic(tmp_path):
    store = RunStore(tmp_path)
    spec = {"experiment": "e", "dataset": "d/x", "model": "m", "seed": 3}
    assert store.get(spec) is None
    stored = store.put(spec, {"valid": {"ndcg@10": 0.5}})
    assert store.get(spec) == stored and stored["key"] == run_key(spec) and stored["spec"] == spec
    assert (store.trained, store.reused) == (1, 1)
    files = [p.name for p in tmp_path.rglob("*") if p.is_file()]
    assert files == [store.path(spec).name]  # no temporary file left behind


# --- compare --------------------------------------------------------------------------------------------


def test_compare_end_to_end_then_resume(tmp_path):
    options = _options(tmp_path, seeds=(0, 1))
    first = run_compare(options)
    assert (first.trained, first.reused) == (2 * len(MODELS), 0)
    doc = _read(tmp_path / "docs/results/synthetic.json")
    assert doc["protocol"] == "loo-full" and set(doc["models"]) == set(MODELS)
    entry = doc["models"]["amsrm"]
    assert {"config", "train", "seeds", "metrics", "valid_metrics", "runs"} <= set(entry)
    assert entry["seeds"] == [0, 1] and entry["config"]["d_model"] == 16
    for metric in ("precision", "recall", "ndcg"):
        assert all(len(entry["metrics"][f"{metric}@{k}"]["runs"]) == 2 for k in KS)
        assert (tmp_path / f"docs/figures/synthetic-{metric}-vs-k.png").read_bytes().startswith(PNG)
    table = (tmp_path / "docs/results/synthetic-compare.md").read_text()
    assert "Relative change of amsrm" in table and "| sasrec-ce |" in table and "ndcg@15" in table

    again = run_compare(options)  # everything finished: only tables and figures are rebuilt
    assert (again.trained, again.reused) == (0, 2 * len(MODELS))
    rebuilt = _read(tmp_path / "docs/results/synthetic.json")["models"]["bpr"]
    assert rebuilt["metrics"] == doc["models"]["bpr"]["metrics"]
    more = run_compare(_options(tmp_path, seeds=(0, 1, 2)), models=["bpr", "popularity"])
    assert (more.trained, more.reused) == (2, 4)  # only the new seed trains


def test_parallel_jobs_store_the_same_runs_as_one_process(tmp_path):
    """--jobs trains missing runs in spawned processes; the records match an in-process run."""
    serial = run_compare(_options(tmp_path / "serial", seeds=(0, 1)), models=["amsrm", "bpr"])
    parallel = run_compare(_options(tmp_path / "parallel", seeds=(0, 1), jobs=2), models=["amsrm", "bpr"])
    assert serial.trained == parallel.trained == 4
    for name in ("serial", "parallel"):
        runs = sorted((tmp_path / name / "runs").rglob("*.json"))
        assert len(runs) == 4
    first, second = (_read(tmp_path / f"{name}/docs/results/synthetic.json")["models"]
                     for name in ("serial", "parallel"))
    for model in ("amsrm", "bpr"):
        for metric in ("ndcg@10", "recall@20"):
            assert first[model]["metrics"][metric]["runs"] == pytest.approx(
                second[model]["metrics"][metric]["runs"], abs=1e-6)


def test_dry_run_prints_the_plan_and_trains_nothing(tmp_path, capsys):
    flags = [*_flags(tmp_path), "--seeds", "0", "--models", "amsrm", "bpr", "--dry-run"]
    assert main(["experiment", "compare", *flags]) == 0
    out = capsys.readouterr().out
    assert "[todo] bpr seed 0" in out and "planned 2 runs; trained 0" in out
    assert not (tmp_path / "runs").exists() and not (tmp_path / "docs").exists()


def test_unknown_set_key_is_an_error(tmp_path, capsys):
    assert main(["experiment", "ablation", *_flags(tmp_path), "--set", "d_modle=8", "--dry-run"]) == 2
    assert "d_modle" in capsys.readouterr().err


# --- tuning ---------------------------------------------------------------------------------------------


def test_every_tunable_model_gets_the_same_budget():
    sizes = {m: len(grid_points(m)) for m in MODELS if GRIDS[m]}
    assert set(sizes) == set(MODELS) - {"popularity"} and set(sizes.values()) == {4}
    assert grid_points("popularity") == [{}]
    for model in sizes:  # the defaults are the first config of every grid
        config = MODELS[model][1]()
        first = grid_points(model)[0]
        assert all(getattr(config, k, getattr(TrainConfig(), k, None)) == v for k, v in first.items())


def test_selection_reads_validation_never_test():
    def record(valid, test):
        return {"valid": {"ndcg@10": valid}, "test": {"ndcg@10": test}}

    # test metrics would pick candidate 0, validation picks candidate 1
    candidates = [[record(0.10, 0.90)], [record(0.30, 0.10), record(0.20, 0.10)], [record(0.24, 0.50)]]
    assert select_best(candidates) == 1
    assert select_best([[{"valid": {"ndcg@10": 0.1}}], [{"valid": {"ndcg@10": 0.2}}]]) == 1  # no test at all
    assert select_best([[record(0.2, 0.0)], [record(0.2, 1.0)]]) == 0  # ties go to the earlier (default)


def test_tuned_compare_records_the_validation_winner(tmp_path):
    outcome = run_compare(_options(tmp_path, seeds=(0, 1)), models=["bpr", "popularity"], tune=True)
    assert outcome.trained == 4 + 1 + 2  # bpr: grid on seed 0, the winner on seed 1; popularity: 2 seeds
    entry = _read(tmp_path / "docs/results/synthetic.json")["models"]["bpr"]
    tuning = entry["tuning"]
    scores = [g["valid_ndcg@10"][0] for g in tuning["grid"]]
    assert tuning["selected"] == tuning["grid"][scores.index(max(scores))]["config"]
    assert entry["train"]["lr"] == tuning["selected"]["lr"]
    assert entry["config"]["d_model"] == tuning["selected"]["d_model"]
    assert entry["valid_metrics"]["ndcg@10"]["runs"][0] == max(scores)  # seed 0 is the reused grid run
    assert "Hyper-parameter selection" in (tmp_path / "docs/results/synthetic-compare.md").read_text()


# --- seqlen and ablation --------------------------------------------------------------------------------


def test_seqlen_command(tmp_path):
    assert main(["experiment", "seqlen", *_flags(tmp_path), "--seeds", "0", "--lengths", "4", "8"]) == 0
    doc = _read(tmp_path / "docs/results/synthetic-seqlen.json")
    assert set(doc["models"]) == {"amsrm n=4", "amsrm n=8", "sasrec-ce n=4", "sasrec-ce n=8"}
    assert doc["models"]["sasrec-ce n=8"]["config"]["max_len"] == 8
    assert (tmp_path / "docs/figures/synthetic-seqlen.png").read_bytes().startswith(PNG)


def test_ablation_writes_variants_and_field_importance(tmp_path):
    outcome = run_ablation(_options(tmp_path))
    assert outcome.trained == len(VARIANTS)
    models = _read(tmp_path / "docs/results/synthetic-ablation.json")["models"]
    assert set(models) == set(VARIANTS)
    fusions = [models[v]["config"]["fusion"] for v in ("all", "all-sum", "all-gated", "all-attention")]
    assert fusions == ["concat", "sum", "gated", "attention"]
    valid = {v: m["valid_metrics"]["ndcg@10"]["mean"] for v, m in models.items()}
    best = max(valid, key=lambda v: (valid[v], -list(VARIANTS).index(v)))  # the first of equals
    table = (tmp_path / "docs/results/synthetic-ablation.md").read_text()
    assert f"Chosen on validation NDCG@10 (mean over seeds): **{best}**" in table
    assert models["none"]["field_importance"] == {}
    assert set(models["all-sum"]["field_importance"]) == set(SIDE_FIELDS)
    assert set(models["item"]["field_importance"]) == {"item.category", "item.brand"}
    for name in ("ablation", "field-importance"):
        assert (tmp_path / f"docs/figures/synthetic-{name}.png").read_bytes().startswith(PNG)


def test_variants_drop_groups_the_data_set_lacks(tiny):
    data, _ = tiny
    no_users = dataclasses.replace(data, user_fields={})  # like Beauty: no user side information
    variants = effective_variants(no_users, list(VARIANTS))
    assert "user" not in variants and not variants["all-gated"]["use_user_fields"]
    assert variants["all-gated"]["fusion"] == "gated" and variants["all"]["use_item_fields"] is True
    assert list(effective_variants(dataclasses.replace(no_users, item_fields={}), ["user", "item"])) == []


# --- fusion variants ------------------------------------------------------------------------------------

# Recorded with the AMSRM of commit 4130db6, before the fusion field existed: the default ("concat")
# model must still build the same parameters from the same seed and compute the same scores.
CONCAT_STATE_ABS_SUM = 681.509514
CONCAT_SCORES_SUM = 15.311852623563027
CONCAT_KEYS = ["item_category", "item_brand", "user_gender", "user_age_band", "item_id.weight",
               "item_fields.category.embedding.weight", "item_fields.brand.embedding.weight",
               "item_proj.weight", "item_proj.bias", "behaviour.weight",
               "user_fields.gender.embedding.weight", "user_fields.age_band.embedding.weight",
               "splice_proj.weight", "splice_proj.bias", "position.weight"]


def test_concat_fusion_is_the_model_from_before(tiny):
    data, split = tiny
    model = _amsrm(data)
    state = model.state_dict()
    assert list(state)[:len(CONCAT_KEYS)] == CONCAT_KEYS and model.config.fusion == "concat"
    assert state["item_proj.weight"].shape == (16, 32) and state["splice_proj.weight"].shape == (16, 40)
    total = sum(float(v.double().abs().sum()) for v in state.values() if v.is_floating_point())
    assert total == pytest.approx(CONCAT_STATE_ABS_SUM, abs=1e-4)
    torch.manual_seed(1)
    with torch.no_grad():  # side blocks non-zero, as after training
        model.item_proj.weight.normal_(0, 0.1)
        model.splice_proj.weight.normal_(0, 0.1)
    batch = case_windows(split, split.test_cases[:8], 10).batch(slice(None))
    explicit = _amsrm(data, seed=9, fusion="concat")
    explicit.load_state_dict(model.state_dict())  # same parameter names: old checkpoints still load
    with torch.no_grad():
        scores = model.full_sort_predict(batch)
        assert float(scores.double().sum()) == pytest.approx(CONCAT_SCORES_SUM, rel=1e-6)
        assert torch.equal(explicit.full_sort_predict(batch), scores)


@pytest.mark.parametrize("fusion", ["sum", "gated", "attention"])
def test_sum_gated_and_attention_start_id_only_are_causal_and_train(tiny, fusion):
    data, split = tiny
    model = _amsrm(data, fusion=fusion)
    batch = case_windows(split, split.test_cases[:8], 10).batch(slice(None))
    id_only = _amsrm(data, use_item_fields=False, use_behaviour=False, use_user_fields=False)
    id_only.load_state_dict(model.state_dict(), strict=False)  # shared parts: ids, positions, blocks
    with torch.no_grad():
        assert torch.allclose(model(batch), id_only(batch), atol=1e-6)  # side terms start at zero

    model.train()
    windows = training_windows(split, 10)
    train_batch = windows.batch(slice(0, 64))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = model.calculate_loss(train_batch).item()
    for _ in range(15):
        optimiser.zero_grad()
        model.calculate_loss(train_batch).backward()
        optimiser.step()
    assert model.calculate_loss(train_batch).item() < first
    model.eval()
    side = model.blocks[0].attn.side_query[0].weight if fusion == "attention" else \
        model.splice_sum.project[0].weight
    assert side.abs().sum() > 0  # the side projections learned
    with torch.no_grad():  # serving runs the last block for the last position only: the same output
        assert torch.allclose(model.last_hidden(batch), model(batch)[:, -1], atol=1e-5)
    if fusion == "attention":  # the values and the scored items are the ids alone
        assert model.item_proj is model.item_sum is model.splice_proj is model.splice_sum is None
        assert torch.equal(model.item_representations(), model.item_id.weight)

    T = batch["item_seq"].shape[1]
    with torch.no_grad():
        base = model(batch)
        for t in (1, T // 2, T - 2):  # rewrite every event after t: outputs up to t must not move
            future = {k: v.clone() for k, v in batch.items()}
            future["item_seq"][:, t + 1:] = torch.randint(2, 150, future["item_seq"][:, t + 1:].shape)
            future["behaviour_seq"][:, t + 1:] = 2
            out = model(future)
            assert torch.allclose(out[:, :t + 1], base[:, :t + 1], atol=1e-6)
            assert not torch.allclose(out[:, t + 1:], base[:, t + 1:])


@pytest.mark.parametrize("fusion", ["concat", "sum", "gated", "attention"])
def test_field_importance_one_finite_value_per_active_field(tiny, fusion):
    data, split = tiny
    model = _amsrm(data, fusion=fusion)
    with torch.no_grad():  # as after training: the side blocks are no longer zero
        for name, p in model.named_parameters():
            if "proj" in name or "project" in name or "side_query" in name:
                p.normal_(0, 0.1)
    importance = field_importance(model, split)
    assert list(importance) == SIDE_FIELDS == model.side_field_names()
    assert all(math.isfinite(v) and v > 0 for v in importance.values())
    if fusion == "gated":
        assert all(0 < v < 1 for v in importance.values())
        gates = model.field_gates(case_windows(split, split.test_cases[:4], 10).batch(slice(None)))
        assert list(gates) == SIDE_FIELDS and all(g.shape == gates["behaviour"].shape for g in gates.values())
    no_users = field_importance(_amsrm(data, fusion=fusion, use_user_fields=False), split)
    assert list(no_users) == ["item.category", "item.brand", "behaviour"]
    assert field_importance(_amsrm(data, use_item_fields=False, use_behaviour=False, use_user_fields=False),
                            split) == {}
