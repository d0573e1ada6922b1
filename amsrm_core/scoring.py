"""Top-K recommendation from raw ids: the one scoring path shared offline and online.

The stream worker, the demo, the benchmark and the offline parity test all call
:class:`Scorer`; nothing else turns histories into recommendations.

Input: windows of raw ids (user id, then (item id, behaviour) pairs, latest last).
The scorer keeps the latest ``model.config.max_len`` events of each window and
builds exactly the tensors of :func:`amsrm_core.batching.case_windows`: left-padded
with 0, latest event last, unknown ids mapped to 1 (``Vocabulary.lookup``), no
behaviour → 0, and the batch trimmed to its longest window as
``WindowTensors.batch`` does.  It then scores with ``model.full_sort_predict`` (what
the offline evaluator calls) under ``torch.inference_mode``, with savings that change
the Top-K by float rounding at most (the parity tests' tolerance): windows are grouped
by length (up to 4, 8, 16, … events) and each group is trimmed to its longest window,
so short histories do not pay for the padding of long ones; and for models that use
the base class's ``full_sort_predict`` (hidden state · item representations) the item
representations, a constant of a frozen model, are computed once instead of once per
batch.  On the CPU that product is numpy's (OpenBLAS) rather than torch's (MKL): on the
AMD EPYC development machine, one thread, Beauty's 12,103 items, 22.6 µs per event instead
of 46.7 for a micro-batch of 256 (bench/scoring_bench.py; docs/BENCHMARKS.md, "Scoring on
the CPU").

Masking: padding and unknown (indices 0 and 1) are never recommended; with
``exclude_window`` the items of the scored window are not either.  The offline
evaluator masks the user's *whole* history instead; the two agree exactly when the
window holds the whole history, and the parity test masks the window on both
sides (see docs/STREAMING.md).

Cold windows (no known item: a new user, or only unknown items) carry no signal a
sequence model can use, so they get the popularity fallback, marked as such.
Popularity comes from ``popularity.npy`` beside the checkpoint (training-event
counts, written by :func:`save_popularity`); a checkpoint without that file falls
back to the norms of the item representations (a rough proxy: with tied
embeddings and CE, frequent items grow larger norms), with a logged warning.
"""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from amsrm.errors import ConfigError
from amsrm_core.candidates import CandidateIndex, IndexOptions, build_index, rank_candidates
from amsrm_core.checkpoint import LoadedCheckpoint, load_checkpoint
from amsrm_core.files import write_atomically
from amsrm_core.models.base import Recommender
from amsrm_core.schema import InteractionData
from amsrm_core.vocab import PAD, UNKNOWN

log = logging.getLogger(__name__)

POPULARITY_FILE = "popularity.npy"
FALLBACK_POPULARITY = "popularity"
MIN_GROUP_ROWS = 32  # smallest length group worth a forward pass of its own (Scorer._length_buckets)


@dataclass(frozen=True)
class Window:
    """What the scorer needs to know about one user: raw ids only, latest event last."""

    user_id: str
    events: Sequence[tuple[str, str | None]]  # (item id, behaviour or None)


@dataclass(frozen=True)
class Ranked:
    """Top-K raw item ids with their scores; ``fallback`` names the non-model source, if any."""

    items: list[str]
    scores: list[float]
    fallback: str | None = None


def release(scorer: object) -> None:
    """Free what a scorer holds beyond memory (the stream worker's scoring process), if anything."""
    close = getattr(scorer, "close", None)
    if callable(close):
        close()


def save_popularity(directory: str | Path, data: InteractionData, positions: np.ndarray) -> Path:
    """Write the item counts of ``positions`` (the training events) beside a checkpoint."""
    counts = np.bincount(data.items[positions], minlength=len(data.item_vocab)).astype(np.float32)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.save would append .npy to a temp name
            np.save(f, counts, allow_pickle=False)

    return write_atomically(Path(directory) / POPULARITY_FILE, write)


def load_popularity(directory: str | Path, n_items: int) -> np.ndarray | None:
    """The saved popularity vector, or None when the checkpoint has none."""
    path = Path(directory) / POPULARITY_FILE
    if not path.exists():
        return None
    counts = np.load(path, allow_pickle=False)
    if counts.shape != (n_items,):
        raise ValueError(f"{path}: shape {counts.shape} does not match the {n_items}-item catalogue")
    return counts.astype(np.float32)


def mask_(scores: torch.Tensor, item_seq: torch.Tensor, exclude_window: bool) -> torch.Tensor:
    """Padding, unknown and (optionally) the window's items to -inf, in place."""
    scores[:, : UNKNOWN + 1] = -torch.inf
    if exclude_window:
        scores.scatter_(1, item_seq, -torch.inf)  # its 0s and 1s are masked already
    return scores


class _LastHidden(torch.nn.Module):
    """The forward pass's last position (the model side of ``full_sort_predict``), as a module so
    it can be traced (see ``Scorer``): the CPU hot path, which takes the product in numpy."""

    def __init__(self, model: Recommender) -> None:
        super().__init__()
        self.model = model

    def forward(self, item_seq: torch.Tensor, behaviour_seq: torch.Tensor, user: torch.Tensor
                ) -> torch.Tensor:
        batch = {"item_seq": item_seq, "behaviour_seq": behaviour_seq, "user": user}
        return self.model.last_hidden(batch)


class _TopK(torch.nn.Module):
    """Forward pass, product with the frozen item representations, masking and Top-K: the scorer's
    whole hot path for base-class models on an accelerator, as one module so it can be traced."""

    def __init__(self, model: Recommender, item_reps: torch.Tensor, k: int, exclude_window: bool) -> None:
        super().__init__()
        self.model, self.item_reps, self.k, self.exclude_window = model, item_reps, k, exclude_window

    def forward(self, item_seq: torch.Tensor, behaviour_seq: torch.Tensor, user: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        batch = {"item_seq": item_seq, "behaviour_seq": behaviour_seq, "user": user}
        hidden = self.model.last_hidden(batch)  # (B, H), as Recommender.full_sort_predict
        scores = (hidden @ self.item_reps.T).float()  # (B, n_items), a fresh tensor we may write into
        return torch.topk(mask_(scores, item_seq, self.exclude_window), self.k, dim=1)


def _tuple(outputs: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return outputs if isinstance(outputs, tuple) else (outputs,)


class Scorer:
    """Raw windows in, raw Top-K out, through ``model.full_sort_predict``.

    ``traced`` (models with the base class's ``full_sort_predict`` only): run forward pass,
    masking and Top-K as one TorchScript trace.  Same operations, same results (checked on
    two shapes when built; eager is kept if they differ or tracing fails), but one call
    that releases the GIL once instead of once per operator: a scoring thread next to a
    busy event loop waits for the GIL after every eager operator (measured 10× slower
    per event than alone; docs/BENCHMARKS.md, Streaming).
    """

    def __init__(self, checkpoint: LoadedCheckpoint, k: int = 10, exclude_window: bool = True,
                 device: str | torch.device = "cpu", popularity: np.ndarray | None = None,
                 traced: bool = True, group_by_length: bool | None = None,
                 index: IndexOptions | None = None) -> None:
        self.device = torch.device(device)
        # on a CPU the padding costs arithmetic; on an accelerator it is nearly free and every group
        # costs a launch sequence and a host sync (docs/BENCHMARKS.md, "Scoring on a GPU")
        self.group_by_length = self.device.type == "cpu" if group_by_length is None else group_by_length
        self.model = checkpoint.model.to(self.device).eval()
        self.max_len: int = self.model.config.max_len
        self.exclude_window = exclude_window
        vocabs = checkpoint.vocabularies
        self.item_vocab, self.user_vocab = vocabs["item"], vocabs["user"]
        self.behaviour_vocab = vocabs["behaviour"]
        self.item_ids = np.asarray(self.item_vocab.tokens, dtype=object)
        n_items = len(self.item_vocab)
        self.k = max(1, min(k, n_items - UNKNOWN - 1))
        manifest = checkpoint.manifest
        self.version = f"{manifest.get('model', 'model')}-{manifest.get('weights_sha256', '')[:12]}"
        self.popularity = self._popularity_scores(popularity, n_items)
        self._item_reps = self._frozen_item_representations()
        self._item_reps_t: np.ndarray | None = None  # (H, n_items) float32 for numpy's BLAS, CPU only
        if self._item_reps is not None and self.device.type == "cpu":
            self._item_reps_t = np.ascontiguousarray(self._item_reps.detach().float().T.numpy())
            # numpy's BLAS would start a thread per core: give it torch's thread count
            threadpool_limits(torch.get_num_threads(), user_api="blas")
        self._kernel = self._trace() if traced and self._item_reps is not None else None
        self._index = self._build_index(index or IndexOptions())

    def _build_index(self, options: IndexOptions) -> CandidateIndex | None:
        """An approximate Top-K index over the frozen item representations (amsrm_core.candidates);
        only on the CPU path, where the exact product is numpy's."""
        if options.kind == "exact":
            return None
        if self._item_reps_t is None:
            model = type(self.model).__name__
            raise ConfigError(f"a {options.kind} Top-K index needs the CPU scorer of a model with the base"
                              f" class's full_sort_predict (device {self.device}, {model})")
        started = time.perf_counter()
        index = build_index(self._item_rows(), options)
        log.info("%s Top-K index over %d items built in %.1fs", options.kind, self._item_reps_t.shape[1],
                 time.perf_counter() - started)
        return index

    def _item_rows(self) -> np.ndarray:
        """(n_items, H) float32: the frozen representations as rows (a view, no copy, when they are
        float32 already, as on the CPU)."""
        assert self._item_reps is not None
        return self._item_reps.detach().float().contiguous().numpy()

    @classmethod
    def from_checkpoint(cls, directory: str | Path, **options) -> Scorer:
        """Load a checkpoint and the popularity vector saved beside it, if any."""
        device = options.get("device", "cpu")
        loaded = load_checkpoint(directory, device)
        popularity = options.pop("popularity", None)
        if popularity is None:
            popularity = load_popularity(directory, len(loaded.vocabularies["item"]))
        return cls(loaded, popularity=popularity, **options)

    def _popularity_scores(self, popularity: np.ndarray | None, n_items: int) -> torch.Tensor:
        if popularity is not None:
            scores = torch.as_tensor(np.asarray(popularity, dtype=np.float32))
        else:
            log.warning("no %s beside the checkpoint: cold users get items ranked by representation norm",
                        POPULARITY_FILE)
            with torch.inference_mode():
                scores = self.model.item_representations().norm(dim=-1).float().cpu()
        if scores.shape != (n_items,):
            raise ValueError(f"popularity has shape {tuple(scores.shape)}, expected ({n_items},)")
        return scores.clone().to(self.device)

    @torch.inference_mode()
    def _frozen_item_representations(self) -> torch.Tensor | None:
        """The item side of the base class's ``full_sort_predict``, computed once.

        The scorer's model never trains, so the (n_items, H) matrix every batch would
        recompute is a constant.  Models that override ``full_sort_predict`` keep theirs.
        """
        if type(self.model).full_sort_predict is not Recommender.full_sort_predict:
            return None
        return self.model.item_representations()

    @torch.inference_mode()
    def _trace(self) -> torch.jit.ScriptModule | None:
        """The traced hot path (``_LastHidden`` on the CPU, else ``_TopK``), if it reproduces the
        eager module exactly on two other shapes."""
        if self._item_reps is None:  # only a scorer with frozen item representations is traced
            return None
        eager: torch.nn.Module = (
            _LastHidden(self.model) if self._item_reps_t is not None
            else _TopK(self.model, self._item_reps, self.k, self.exclude_window)).eval()
        item = min(UNKNOWN + 1, len(self.item_vocab) - 1)

        def example(rows: int, width: int) -> tuple[torch.Tensor, ...]:
            seq = torch.full((rows, width), item, dtype=torch.long, device=self.device)
            seq[0, 0] = PAD  # a padded position, as real batches have
            users = torch.full((rows,), UNKNOWN, dtype=torch.long, device=self.device)
            return seq, torch.zeros_like(seq), users

        try:
            with warnings.catch_warnings():  # torch 2.x calls jit.trace deprecated; it still works
                warnings.simplefilter("ignore")
                traced = torch.jit.trace(eager, example(2, 3), check_trace=False)
            for shape in ((1, 1), (3, self.max_len)):
                inputs = example(*shape)
                if not all(torch.equal(a, b) for a, b in zip(_tuple(traced(*inputs)), _tuple(eager(*inputs)),
                                                              strict=True)):
                    raise ValueError(f"traced scores differ from eager ones at shape {shape}")
        except Exception as e:  # scoring stays correct, only slower next to a busy thread
            log.warning("scoring %s eagerly: tracing failed (%s)", type(self.model).__name__, e)
            return None
        return traced

    def full_sort_predict(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``model.full_sort_predict(batch)``, with the constant item side computed once."""
        if self._item_reps is None:
            return self.model.full_sort_predict(batch)
        return self._product(self.model.last_hidden(batch))  # as Recommender.full_sort_predict

    def _product(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (B, H) · the frozen item representations: numpy's BLAS on the CPU (module docstring)."""
        if self._item_reps_t is None:
            return hidden @ self._item_reps.T  # type: ignore[union-attr]  # only called when frozen
        return torch.from_numpy(hidden.detach().float().numpy() @ self._item_reps_t)

    def encode(self, windows: Sequence[Window]) -> dict[str, torch.Tensor]:
        """The left-padded batch of ``case_windows``/``WindowTensors.batch`` for raw windows."""
        return {name: torch.from_numpy(array) for name, array in self._encode_arrays(windows).items()}

    def _encode_arrays(self, windows: Sequence[Window]) -> dict[str, np.ndarray]:
        width = max(1, min(self.max_len, max((len(w.events) for w in windows), default=1)))
        item_seq = np.full((len(windows), width), PAD, dtype=np.int64)
        behaviour_seq = np.full((len(windows), width), PAD, dtype=np.int64)
        item_lookup, behaviour_lookup = self.item_vocab.lookup, self.behaviour_vocab.lookup
        for row, window in enumerate(windows):
            events = window.events[-width:]
            start = width - len(events)
            for col, (item, behaviour) in enumerate(events, start):
                item_seq[row, col] = item_lookup(item)
                behaviour_seq[row, col] = PAD if behaviour is None else behaviour_lookup(behaviour)
        users = np.fromiter((self.user_vocab.lookup(w.user_id) for w in windows), dtype=np.int64,
                            count=len(windows))
        return {"item_seq": item_seq, "behaviour_seq": behaviour_seq, "user": users}

    @torch.inference_mode()
    def masked_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, n_items) model scores with padding, unknown and (optionally) window items at -inf."""
        batch = {k: v.to(self.device) for k, v in batch.items()}
        scores = self.full_sort_predict(batch).float().clone()  # (B, n_items); we write into it
        return mask_(scores, batch["item_seq"], self.exclude_window)

    @torch.inference_mode()
    def recommend(self, windows: Sequence[Window]) -> list[Ranked]:
        """Top-K per window: one forward pass per length group for the windows with history,
        popularity for the rest.

        The bookkeeping (which rows are warm, their lengths, the groups) is done in numpy,
        which keeps the GIL: every torch call releases it, and in a thread beside a busy
        event loop each one waits to get it back.
        """
        if not windows:
            return []
        arrays = self._encode_arrays(windows)
        item_seq = arrays["item_seq"]
        warm = (item_seq > UNKNOWN).any(axis=1)  # (B,) at least one known item
        results: list[Ranked | None] = [None] * len(windows)
        lengths = (item_seq != PAD).sum(axis=1)
        warm_rows = np.flatnonzero(warm)
        one_group = [warm_rows] if len(warm_rows) else []
        for rows in self._length_buckets(warm_rows, lengths) if self.group_by_length else one_group:
            width = int(lengths[rows].max())
            sub = {k: torch.from_numpy(np.ascontiguousarray(v[rows][:, -width:] if v.ndim == 2 else v[rows]))
                   for k, v in arrays.items()}
            for row, ranked in zip(rows.tolist(), self._warm_top_k(sub), strict=True):
                results[row] = ranked
        cold_rows = np.flatnonzero(~warm).tolist()
        if cold_rows:
            scores = mask_(self.popularity.expand(len(cold_rows), -1).clone(),
                           torch.from_numpy(item_seq[cold_rows]).to(self.device), self.exclude_window)
            for row, ranked in zip(cold_rows, self._top_k(scores, FALLBACK_POPULARITY), strict=True):
                results[row] = ranked
        return results  # type: ignore[return-value]  # every row was filled above

    async def recommend_async(self, windows: Sequence[Window]) -> list[Ranked]:
        """``recommend`` in a worker thread, for an event loop that must keep running meanwhile
        (the stream worker's thread mode; streams.worker.scoring_process.ProcessScorer has the same call)."""
        return await asyncio.to_thread(self.recommend, windows)

    @staticmethod
    def _length_buckets(rows: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
        """Rows grouped by window length (up to 4, 8, 16, …): short windows skip most of the padding.

        Each group is trimmed to its own longest window, as ``WindowTensors.batch`` trims a
        batch; the transformer's cost grows with the width, and most windows are short.  But
        every group costs a forward pass, a product and a Top-K call of its own, which small
        groups do not pay back, so a group of fewer than ``MIN_GROUP_ROWS`` rows joins the next
        longer one (the longest stays on its own).  bench/scoring_bench.py compares with one
        group per batch: about equal for micro-batches of 16 and 64, a third cheaper at 256.
        """
        if not len(rows):
            return []
        bucket = np.ceil(np.log2(np.maximum(lengths[rows], 4))).astype(np.int64)
        groups: list[np.ndarray] = []
        short: np.ndarray | None = None  # rows waiting to join a longer group
        for b in np.unique(bucket):  # shortest first
            group = rows[bucket == b] if short is None else np.concatenate([short, rows[bucket == b]])
            short = group if len(group) < MIN_GROUP_ROWS else None
            if short is None:
                groups.append(group)
        if short is not None:  # the longest windows stay a group of their own: joining the
            groups.append(short)  # previous group would pad all of its rows to their width
        return groups

    def _warm_top_k(self, batch: dict[str, torch.Tensor]) -> list[Ranked]:
        """Model Top-K of one length group: the traced kernel if there is one, else eagerly."""
        if self._kernel is None:
            return self._top_k(self.masked_scores(batch))
        on_device = [batch[name] if self.device.type == "cpu" else batch[name].to(self.device)
                     for name in ("item_seq", "behaviour_seq", "user")]
        if self._item_reps_t is None:
            return self._ranked(*self._kernel(*on_device))
        hidden = self._kernel(*on_device)
        if self._index is not None:
            return self._index_top_k(hidden.detach().float().numpy(), on_device[0].numpy())
        scores = self._product(hidden)  # a fresh array: masked in place
        return self._top_k(mask_(scores, on_device[0], self.exclude_window))

    def _index_top_k(self, hidden: np.ndarray, item_seq: np.ndarray) -> list[Ranked]:
        """Top-K among the index's candidates, scored exactly (amsrm_core.candidates); enough of
        them that K remain after the window's items, padding and unknown are masked."""
        assert self._index is not None
        always = np.broadcast_to(np.array([PAD, UNKNOWN]), (len(item_seq), 2))
        excluded = np.hstack([item_seq, always]) if self.exclude_window else np.ascontiguousarray(always)
        candidates = self._index.search(hidden, self.k + excluded.shape[1])
        values, indices = rank_candidates(hidden, self._item_rows(), candidates, excluded, self.k)
        return self._ranked(torch.from_numpy(values), torch.from_numpy(indices))

    def _top_k(self, scores: torch.Tensor, fallback: str | None = None) -> list[Ranked]:
        return self._ranked(*torch.topk(scores, self.k, dim=1), fallback)

    def _ranked(self, values: torch.Tensor, indices: torch.Tensor, fallback: str | None = None
                ) -> list[Ranked]:
        scores, items = values.numpy(force=True), indices.numpy(force=True)
        ranked = []
        for idx, val in zip(items, scores, strict=True):
            keep = np.isfinite(val)  # fewer than K items left after masking: return what is left
            ranked.append(Ranked(self.item_ids[idx[keep]].tolist(), val[keep].tolist(), fallback))
        return ranked
