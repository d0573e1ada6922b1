import argparse
import dataclasses
import json

import numpy as np
import pytest
import torch

import amsrm_core.cli
import amsrm_core.experiments.common
from amsrm.cli import build_parser, main
from amsrm_core.checkpoint import MANIFEST, RUN_FIELDS, save_checkpoint
from amsrm_core.models.amsrm import AMSRMConfig
from amsrm_core.runner import build_model, parse_overrides
from amsrm_core.training.trainer import TrainConfig


def test_train_writes_results_and_checkpoints(tmp_path, capsys):
    results = tmp_path / "synthetic.json"
    code = main(["train", "--dataset", "synthetic", "--seeds", "0", "1", "--epochs", "2", "--no-progress",
                 "--set", "max_len=10", "--set", "d_model=16", "--results", str(results),
                 "--checkpoint", str(tmp_path / "ckpt"), "--threads", "1"])
    assert code == 0
    doc = json.loads(results.read_text())
    assert doc["dataset"] == "synthetic" and doc["protocol"] == "loo-full"
    entry = doc["models"]["amsrm"]
    assert entry["seeds"] == [0, 1]
    manifests = [json.loads((tmp_path / "ckpt" / f"seed-{s}" / MANIFEST).read_text()) for s in (0, 1)]
    for metric in ("precision", "recall", "ndcg", "hr", "mrr"):
        for k in (5, 10, 15, 20):
            m, key = entry["metrics"][f"{metric}@{k}"], f"{metric}@{k}"
            per_seed = [manifest["metrics"]["test"][key] for manifest in manifests]  # each seed's own run
            assert m["runs"] == per_seed
            assert m["mean"] == pytest.approx(np.mean(per_seed))
            assert m["std"] == pytest.approx(np.std(per_seed, ddof=1))  # the sample std over seeds
    assert any(m["std"] > 0 for m in entry["metrics"].values())  # two seeds, two different runs
    assert entry["config"]["d_model"] == 16
    assert {"commit", "date", "machine", "split"} <= set(doc)
    for seed, manifest in enumerate(manifests):  # what the model was trained on, first-class fields
        assert manifest["dataset"] == manifest["data_name"] == "synthetic" and manifest["protocol"] == "loo"
        assert manifest["train_config"]["epochs"] == 2 and manifest["train_config"]["seed"] == seed
        assert manifest["train_config"]["threads"] == 1
        assert set(manifest["train_config"]) == {f.name for f in dataclasses.fields(TrainConfig)}
    code = main(["evaluate", "--checkpoint", str(tmp_path / "ckpt" / "seed-0")])  # data set from the manifest
    assert code == 0
    assert "ndcg@10=" in capsys.readouterr().out
    # the training records: why each run stopped, and its per-epoch curve, in both files
    for run, manifest in zip(entry["runs"], manifests, strict=True):
        assert run["stop_reason"] == manifest["training"]["stop_reason"] == "epochs"
        assert run["curve"] == manifest["training"]["curve"]
        assert [p["epoch"] for p in run["curve"]] == [1, 2]
        assert all(p["loss"] > 0 and p["seconds"] > 0 and 0 <= p["valid"]["ndcg@10"] <= 1
                   for p in run["curve"])
        assert max(run["curve"], key=lambda p: p["valid"]["ndcg@10"])["epoch"] == run["best_epoch"]
    assert main(["results", "curve", str(results), str(tmp_path / "ckpt" / "seed-1"),
                 "--out", str(tmp_path / "curve.png")]) == 0
    out = capsys.readouterr().out
    assert "amsrm seed 0" in out and "amsrm seed 1" in out and "| epoch | train loss | valid ndcg@10" in out
    assert (tmp_path / "curve.png").stat().st_size > 1000


@pytest.fixture
def saved_on_ml100k(tmp_path, small_synthetic):
    """A checkpoint whose manifest says ml-100k / temporal (trained, really, on small synthetic data)."""
    torch.manual_seed(0)
    model = build_model("amsrm", small_synthetic, {"max_len": 8, "d_model": 8}).eval()
    save_checkpoint(tmp_path / "ckpt", model, small_synthetic, dataset="ml-100k", protocol="temporal",
                    train_config=TrainConfig(epochs=3))
    return tmp_path / "ckpt"


def _spy_on_loading(monkeypatch, data):
    """Record the data set and protocol the CLI asks for; hand back ``data`` whatever the name."""
    asked = []
    real_split = amsrm_core.cli.make_split

    def load(dataset, path=None, /, **options):
        asked.append(dataset)
        return data

    def split(loaded, protocol):
        asked.append(protocol)
        return real_split(loaded, protocol)

    monkeypatch.setattr(amsrm_core.cli, "load_dataset", load)
    monkeypatch.setattr(amsrm_core.cli, "make_split", split)
    return asked


def test_evaluate_takes_dataset_and_protocol_from_the_manifest(monkeypatch, saved_on_ml100k, small_synthetic,
                                                               capsys):
    asked = _spy_on_loading(monkeypatch, small_synthetic)
    assert main(["evaluate", "--checkpoint", str(saved_on_ml100k)]) == 0
    assert asked == ["ml-100k", "temporal"]  # not the parser's synthetic / loo
    asked.clear()
    assert main(["evaluate", "--checkpoint", str(saved_on_ml100k), "--dataset", "synthetic",
                 "--protocol", "loo"]) == 0  # explicit flags still win
    assert asked == ["synthetic", "loo"]
    assert "ndcg@10=" in capsys.readouterr().out


def test_evaluate_an_old_manifest_needs_dataset(monkeypatch, saved_on_ml100k, small_synthetic, capsys):
    manifest = json.loads((saved_on_ml100k / MANIFEST).read_text())
    old = {k: v for k, v in manifest.items() if k not in RUN_FIELDS}  # written before the fields existed
    (saved_on_ml100k / MANIFEST).write_text(json.dumps(old))
    asked = _spy_on_loading(monkeypatch, small_synthetic)
    assert main(["evaluate", "--checkpoint", str(saved_on_ml100k)]) == 2
    err = capsys.readouterr().err
    assert "--dataset and --protocol" in err and str(saved_on_ml100k) in err and asked == []
    assert main(["evaluate", "--checkpoint", str(saved_on_ml100k), "--dataset", "synthetic",
                 "--protocol", "loo"]) == 0  # still loadable
    assert asked == ["synthetic", "loo"]


def _no_data_loading(monkeypatch):
    def load(*args, **kwargs):
        raise AssertionError("a data set was loaded before the overrides were checked")

    monkeypatch.setattr(amsrm_core.cli, "load_dataset", load)
    monkeypatch.setattr(amsrm_core.experiments.common, "load_dataset", load)


@pytest.mark.parametrize(("pair", "named"), [
    ("d_modle=3", "d_modle"), ("d_model=wide", "d_model"), ("dropout=lots", "float"),
    ("use_behaviour=maybe", "true or false")])
def test_train_checks_overrides_before_loading_data(monkeypatch, capsys, pair, named):
    _no_data_loading(monkeypatch)
    assert main(["train", "--dataset", "ml-100k", "--set", pair, "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert named in err and err.count("\n") == 1  # one line, no traceback


@pytest.mark.parametrize("args", [["--set", "d_model=wide"], ["--set", "max_len=1.5"],
                                  ["--synthetic", "n_users=many"]])
def test_experiment_checks_overrides_before_loading_data(monkeypatch, capsys, tmp_path, args):
    _no_data_loading(monkeypatch)
    code = main(["experiment", "compare", "--datasets", "synthetic", "--seeds", "0", *args,
                 "--runs-dir", str(tmp_path / "runs"), "--out-dir", str(tmp_path / "docs")])
    assert code == 2
    assert args[1].partition("=")[0] in capsys.readouterr().err


# Options of the stream layer's commands (streams/cli.py) that still lack help: delete each entry as
# streams/cli.py gets its help text, and the list once it is empty. Nothing else may join it.
STREAMS_WITHOUT_HELP: set[tuple[str, str]] = set()  # nothing may join


def _options(parser: argparse.ArgumentParser, command: str = ""):
    """(command, option, action) for every option and positional of every (sub)command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, f"{command} {name}".strip())
        elif not isinstance(action, argparse._HelpAction | argparse._VersionAction):
            yield command, (action.option_strings or [action.dest])[0], action


def test_every_option_of_every_command_has_help():
    options = list(_options(build_parser()))
    commands = {command for command, _, _ in options}
    assert {"train", "evaluate", "experiment compare", "retrain", "registry add", "demo"} <= commands
    missing = {(command, option) for command, option, action in options if not (action.help or "").strip()}
    assert missing - STREAMS_WITHOUT_HELP == set()


def test_train_flags_come_from_train_config_with_help_and_choices():
    options = {option: action for command, option, action in _options(build_parser()) if command == "train"}
    for field in dataclasses.fields(TrainConfig):
        if field.name in ("seed", "progress"):
            continue
        action = options["--" + field.name.replace("_", "-")]
        assert field.metadata["doc"] in action.help
        assert action.choices == field.metadata["choices"]
    assert set(options["--precision"].choices) == {"fp32", "bf16"}
    assert set(options["--budget-clock"].choices) == {"wall", "cpu"}
    with pytest.raises(SystemExit):  # argparse refuses a value outside the field's choices
        build_parser().parse_args(["train", "--precision", "fp16"])


def test_overrides_are_typed():
    parsed = parse_overrides(AMSRMConfig, ["d_model=8", "dropout=0.1", "use_behaviour=false", "loss=sampled"])
    assert parsed == {"d_model": 8, "dropout": 0.1, "use_behaviour": False, "loss": "sampled"}


def test_results_from_parallel_seed_runs_merge(tmp_path, capsys):
    parts = []
    for seed in (3, 4):
        part = tmp_path / f"part{seed}.json"
        args = ["train", "--dataset", "synthetic", "--seeds", str(seed), "--epochs", "1", "--no-progress",
                "--set", "max_len=5", "--set", "d_model=8", "--results", str(part), "--threads", "1"]
        assert main(args) == 0
        parts.append(part)
    out = tmp_path / "merged.json"
    assert main(["results", "merge", *map(str, parts), "--out", str(out)]) == 0
    entry = json.loads(out.read_text())["models"]["amsrm"]
    single = [json.loads(p.read_text())["models"]["amsrm"]["metrics"]["ndcg@10"]["mean"] for p in parts]
    assert entry["seeds"] == [3, 4]
    assert entry["metrics"]["ndcg@10"]["runs"] == single
    assert main(["results", "merge", str(parts[0]), str(parts[0]), "--out", str(out)]) == 2  # repeated seed
    capsys.readouterr()
    assert main(["results", "table", str(out)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| amsrm"))
    assert f"{entry['metrics']['ndcg@10']['mean']:.4f} ± " in row
    assert main(["results", "table", str(out), "--model", "amsrm"]) == 0
    grid = capsys.readouterr().out
    assert "| ndcg | " in grid and "@15" in grid
