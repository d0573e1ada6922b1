import json

from amsrm.cli import main
from amsrm_core.models.amsrm import AMSRMConfig
from amsrm_core.runner import parse_overrides


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
    for metric in ("precision", "recall", "ndcg", "hr", "mrr"):
        for k in (5, 10, 15, 20):
            m = entry["metrics"][f"{metric}@{k}"]
            assert len(m["runs"]) == 2 and m["std"] >= 0 and 0 <= m["mean"] <= 1
    assert entry["config"]["d_model"] == 16
    assert {"commit", "date", "machine", "split"} <= set(doc)
    assert (tmp_path / "ckpt" / "seed-1" / "manifest.json").exists()
    code = main(["evaluate", "--dataset", "synthetic", "--checkpoint", str(tmp_path / "ckpt" / "seed-0")])
    assert code == 0
    assert "ndcg@10=" in capsys.readouterr().out


def test_bad_override_is_a_clear_error(capsys):
    assert main(["train", "--dataset", "synthetic", "--set", "d_modle=3", "--epochs", "1"]) == 2
    assert "d_modle" in capsys.readouterr().err


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
