"""Turn a split into fixed-width, left-padded tensors for training and evaluation.

A window is the ``max_len`` events before a position, 0-padded on the left (the
paper's rule: pad with 0 from the left, keep the latest n).  Everything is built
once, vectorised, as index arithmetic on the event columns; batches are slices.

Training uses every training event as a target exactly once per epoch: each
user's training run is cut, from its end backwards, into chunks of ``max_len``
targets, and each target is predicted from the events before it inside its chunk
(next-item loss at every position, as SASRec trains).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from amsrm_core.schema import InteractionData
from amsrm_core.splits import Split

Batch = dict[str, torch.Tensor]


def _take(column: np.ndarray, index: np.ndarray) -> np.ndarray:
    """column[index] with index -1 meaning padding (0)."""
    padded = np.append(column, 0)
    return padded[np.where(index < 0, len(column), index)]


def window_index(end: np.ndarray, floor: np.ndarray, width: int) -> np.ndarray:
    """(len(end), width) positions end-width … end-1, set to -1 where below ``floor``."""
    index = end[:, None] - width + np.arange(width)[None, :]
    return np.where(index >= floor[:, None], index, -1)


@dataclass
class WindowTensors:
    """Inputs for a set of windows; ``target`` is (C,) for cases, (C, n) for training."""

    item_seq: torch.Tensor  # (C, n)
    behaviour_seq: torch.Tensor  # (C, n)
    user: torch.Tensor  # (C,)
    target: torch.Tensor

    def __len__(self) -> int:
        return int(self.item_seq.shape[0])

    def batch(self, rows: torch.Tensor | slice) -> Batch:
        """A batch trimmed to its longest window, so short histories cost less compute."""
        item_seq = self.item_seq[rows]
        width = int((item_seq != 0).sum(dim=1).max().clamp(min=1))
        batch = {
            "item_seq": item_seq[:, -width:],
            "behaviour_seq": self.behaviour_seq[rows][:, -width:],
            "user": self.user[rows],
        }
        target = self.target[rows]
        batch["target"] = target[:, -width:] if target.dim() == 2 else target
        return batch


def _tensors(data: InteractionData, index: np.ndarray, user_rows: np.ndarray, target: np.ndarray):
    return WindowTensors(
        item_seq=torch.from_numpy(_take(data.items, index)),
        behaviour_seq=torch.from_numpy(_take(data.behaviours, index)),
        user=torch.from_numpy(data.users[user_rows]),
        target=torch.from_numpy(target),
    )


def case_windows(split: Split, cases: np.ndarray, max_len: int) -> WindowTensors:
    """Windows of the ``max_len`` events before each case position; target = the case's item."""
    cases = np.asarray(cases, dtype=np.int64)
    index = window_index(cases, split.user_start[cases], max_len)
    return _tensors(split.data, index, cases, split.data.items[cases])


def training_windows(split: Split, max_len: int) -> WindowTensors:
    """Chunks of each user's training events, targets = next item at every position."""
    ends, floors = [], []
    for start, end in zip(split.run_start, split.train_end, strict=True):
        # targets are positions start+1 … end-1; chunk them backwards from the end
        for chunk_end in range(int(end), int(start) + 1, -max_len):
            ends.append(chunk_end)
            floors.append(max(int(start) + 1, chunk_end - max_len))
    ends_a = np.asarray(ends, dtype=np.int64)
    target_index = window_index(ends_a, np.asarray(floors, dtype=np.int64), max_len)
    input_index = np.where(target_index >= 0, target_index - 1, -1)
    data = split.data
    return _tensors(data, input_index, np.maximum(ends_a - 1, 0), _take(data.items, target_index))


def history_mask_index(split: Split, cases: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, item) pairs for every item a case's user saw before the case (full history)."""
    starts = split.user_start[cases]
    lengths = cases - starts
    rows = np.repeat(np.arange(len(cases)), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return rows, split.data.items[np.repeat(starts, lengths) + offsets]
