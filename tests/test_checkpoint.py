import json

import pytest
import torch

from amsrm_core.checkpoint import MANIFEST, WEIGHTS, CheckpointError, load_checkpoint, save_checkpoint
from amsrm_core.runner import build_model


def _saved(tmp_path, data):
    torch.manual_seed(0)
    model = build_model("amsrm", data, {"max_len": 12, "d_model": 32}).eval()
    save_checkpoint(tmp_path, model, data, metrics={"test": {"ndcg@10": 0.5}})
    return model


def test_round_trip_gives_identical_scores(tmp_path, tiny_data):
    model = _saved(tmp_path, tiny_data)
    loaded = load_checkpoint(tmp_path)
    batch = {"item_seq": torch.tensor([[0, 2, 3]]), "behaviour_seq": torch.tensor([[0, 2, 3]]),
             "user": torch.tensor([2])}
    assert torch.equal(model.full_sort_predict(batch), loaded.model.full_sort_predict(batch))
    assert loaded.vocabularies["item"].tokens == tiny_data.item_vocab.tokens
    assert loaded.manifest["config"]["d_model"] == 32
    assert loaded.manifest["metrics"]["test"]["ndcg@10"] == 0.5


def test_weights_file_holds_no_pickle(tmp_path, tiny_data):
    _saved(tmp_path, tiny_data)
    head = (tmp_path / WEIGHTS).read_bytes()[:2]
    assert head != b"\x80\x04" and head != b"PK"  # neither a pickle nor torch's zip-of-pickles


def test_tampered_weights_are_refused(tmp_path, tiny_data):
    _saved(tmp_path, tiny_data)
    weights = tmp_path / WEIGHTS
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(tmp_path)


def test_unknown_model_or_config_is_refused(tmp_path, tiny_data):
    _saved(tmp_path, tiny_data)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    (tmp_path / MANIFEST).write_text(json.dumps(dict(manifest, model="evil")))
    with pytest.raises(CheckpointError, match="unknown model"):
        load_checkpoint(tmp_path)
    manifest["config"]["__class__"] = "os.system"
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="config keys"):
        load_checkpoint(tmp_path)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match=r"no manifest\.json"):
        load_checkpoint(tmp_path)
