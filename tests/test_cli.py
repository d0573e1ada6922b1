import json

from amsrm_core.cli import main
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
