"""AMSRM: attention-based sequential recommendation with side information.

Paper: "A Sequential Recommendation Model Based on Attention Mechanism with Side
Information" (AMSRM, 2022).  The behaviour sequence (latest n items, left-padded
with 0) is embedded (S), the side information of each event is embedded (M: item
fields, behaviour type, user fields), the two are spliced E = S ⊕ M, and stacked
causal self-attention blocks (Q/K/V projections, two-layer ReLU feed-forward,
residuals, layer norm, dropout) read E.  The last position's output is scored by
inner product against every item's embedding (item id combined with its side
fields); Top-K by score.

Where this version is more specific than the paper (whose equations are garbled):
- E = S ⊕ M is projected back to the model width by one linear layer (the paper's
  splice must be mapped to the attention width somewhere).  The item block of that
  projection starts as the identity and the side block at zero, so every variant
  starts from the same function as the id-only model: a side-information "gain"
  cannot be an initialisation artefact (docs/ANCHORS.md), and unhelpful fields can stay
  quiet instead of scrambling the item signal from step one.
- Items are represented once — id ⊕ item fields → linear — and that representation
  is used both for the input sequence and for scoring (tied, as in SASRec).
- Pre-layer-norm blocks and learned positions counted from the right, so the
  latest event always has the same position whatever the padding.
- Full softmax cross-entropy by default (see ``training/losses.py``).
- ``fusion`` picks how side fields join the id signal, for the ablation study:
  ``"concat"`` (default) is the paper's splice above; ``"sum"`` adds one projection
  per field to the id representation (``id + Σ_f P_f e_f``, the id block fixed at
  the identity); ``"gated"`` scales each field's term by a learned scalar gate per
  event, ``σ(w_f · [id ⊕ e_f] + b_f)``, whose mean says how much the model reads that
  field.  Each ``P_f`` starts at zero, so every variant starts as the id-only model.
  ``"attention"`` keeps side information out of the value stream, as DIF-SR does (Xie et al.,
  SIGIR 2022): the sequence and the scored items are the ids alone, and each side field only
  adds its own query-key term to every block's attention scores,
  ``softmax((q kᵀ + Σ_f q_f k_fᵀ) / √d_h) v`` with ``q_f, k_f`` projections of the field's
  embedding at each position; ``q_f`` starts at zero, so it too starts as the id-only model.
With every side field switched off the model is exactly SASRec with those choices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from amsrm.errors import ConfigError
from amsrm_core.features import COUNTS, FeatureSchema
from amsrm_core.models.base import Recommender, attention_mask, init_weights


class FieldEmbedding(nn.Module):
    """Embeds a categorical field whose rows hold up to W values (0 = none): the mean of the values,
    or, given how often each was listed (``counts``), their mean weighted by log(1 + count) — a tag
    given by many users weighs more, but not in proportion (a row of single listings is the plain mean)."""

    def __init__(self, vocab_size: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=0)

    def forward(self, values: torch.Tensor, counts: torch.Tensor | None = None) -> torch.Tensor:
        # values, counts: (..., W) → (..., dim)
        weight = (values != 0).float() if counts is None else torch.log1p(counts.float()) * (values != 0)
        weight = weight.unsqueeze(-1)
        return (self.embedding(values) * weight).sum(-2) / weight.sum(-2).clamp(min=1e-6)


class SelfAttention(nn.Module):
    """Multi-head self-attention with explicit Q, K, V projections (the paper's W_Q, W_K, W_V);
    with ``n_side`` fields, each adds a query-key term to the scores ("attention" fusion)."""

    def __init__(self, dim: int, heads: int, dropout: float, n_side: int = 0, d_side: int = 0) -> None:
        super().__init__()
        if dim % heads:
            raise ConfigError(f"d_model {dim} is not divisible by n_heads {heads}")
        self.heads, self.dropout = heads, dropout
        self.query, self.key, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.side_query = nn.ModuleList(nn.Linear(d_side, dim) for _ in range(n_side))
        self.side_key = nn.ModuleList(nn.Linear(d_side, dim) for _ in range(n_side))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, queries: int | None = None,
                side: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Every position attends (``queries=None``), or only the last ``queries`` ones (their
        outputs alone: (B, queries, C)); ``mask`` has a row per query either way.  ``side``: each
        side field's embedding per position (B, T, d_side), read by the scores only."""
        B, T, C = x.shape
        Q = T if queries is None else queries
        q = self._heads(self.query(x[:, T - Q:]))  # (B, nh, Q, hs)
        k, v = self._heads(self.key(x)), self._heads(self.value(x))  # (B, nh, T, hs)
        if side:
            mask = self._side_scores(side, T - Q).masked_fill(~mask, float("-inf"))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(B, Q, C))

    def _side_scores(self, side: list[torch.Tensor], first_query: int) -> torch.Tensor:
        """Σ_f q_f k_fᵀ / √hs, (B, nh, Q, T): added to the id scores, which SDPA scales alike."""
        scores = None
        for f, values in enumerate(side):
            term = self._heads(self.side_query[f](values[:, first_query:])) @ \
                self._heads(self.side_key[f](values)).transpose(-1, -2)
            scores = term if scores is None else scores + term
        assert scores is not None  # side is not empty
        return scores / math.sqrt(self.query.out_features // self.heads)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        B, N, C = t.shape
        return t.view(B, N, self.heads, C // self.heads).transpose(1, 2)


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(LN x), then x + FFN(LN x), dropout on each branch."""

    def __init__(self, dim: int, heads: int, dropout: float, n_side: int = 0, d_side: int = 0) -> None:
        super().__init__()
        self.ln_attn, self.ln_ffn = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, dropout, n_side, d_side)
        self.ffn = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, last_only: bool = False,
                side: list[torch.Tensor] | None = None) -> torch.Tensor:
        """(B, T, C), or (B, 1, C) for the last position alone: its attention still reads every key."""
        if not last_only:
            x = x + self.drop(self.attn(self.ln_attn(x), mask, side=side))
            return x + self.drop(self.ffn(self.ln_ffn(x)))
        x = x[:, -1:] + self.drop(self.attn(self.ln_attn(x), mask[:, :, -1:], queries=1, side=side))
        return x + self.drop(self.ffn(self.ln_ffn(x)))


class SideSum(nn.Module):
    """base + Σ_f g_f · P_f(side_f): the "sum" (g_f = 1) and "gated" fusions.

    ``P_f`` (side width → model width, no bias) starts at zero, so the output starts as
    ``base``.  A gate is one scalar per field and position, read from the base and the
    field's own embedding, so its mean over a data set measures how much the field is used.
    """

    def __init__(self, dim: int, d_side: int, n_fields: int, gated: bool) -> None:
        super().__init__()
        self.project = nn.ModuleList(nn.Linear(d_side, dim, bias=False) for _ in range(n_fields))
        self.gate = nn.ModuleList(nn.Linear(dim + d_side, 1) for _ in range(n_fields)) if gated else None

    def forward(self, base: torch.Tensor, sides: list[torch.Tensor]
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        out, gates = base, []  # base (..., dim), each side (..., d_side)
        for f, side in enumerate(sides):
            term = self.project[f](side)  # (..., dim)
            if self.gate is not None:
                gates.append(torch.sigmoid(self.gate[f](torch.cat([base, side], dim=-1))))  # (..., 1)
                term = gates[-1] * term
            out = out + term
        return out, [g.squeeze(-1) for g in gates]


FUSIONS = ("concat", "sum", "gated", "attention")
FIELD_WEIGHTS = ("distinct", "count")


@dataclass
class AMSRMConfig:
    max_len: int = 30  # window n; the paper's best of {20, 30, 50, 100}
    d_model: int = 64  # attention width, also the item representation width
    d_side: int = 16  # embedding width of each side field before splicing
    n_blocks: int = 2  # stacked self-attention blocks
    n_heads: int = 1  # SASRec's setting; more heads did not help it on small data
    dropout: float = 0.2  # 0.5 hurts on MovieLens (docs/ANCHORS.md)
    use_item_fields: bool = True  # item side info (category, genres, brand, tags)
    use_behaviour: bool = True  # behaviour type / rating level of each event
    use_user_fields: bool = True  # user side info (gender, age, occupation, …)
    loss: str = "ce"  # ce | sampled | bce (see training/losses.py)
    n_negatives: int = 256  # only for loss="sampled"
    init_std: float = 0.1  # N(0, 0.1²) init; PyTorch's N(0, 1) embeddings learn slowly with CE
    fusion: str = "concat"  # concat (the paper's splice) | sum | gated | attention (scores only, DIF-SR)
    field_weights: str = "distinct"  # multi-valued fields: distinct (plain mean) | count (log(1+count))


class AMSRM(Recommender):
    def __init__(self, config: AMSRMConfig, schema: FeatureSchema,
                 tables: dict[str, torch.Tensor] | None = None) -> None:
        super().__init__(config, schema)
        if config.fusion not in FUSIONS:
            raise ConfigError(f"fusion must be one of {FUSIONS}, got {config.fusion!r}")
        if config.field_weights not in FIELD_WEIGHTS:
            raise ConfigError(f"field_weights must be one of {FIELD_WEIGHTS}, got {config.field_weights!r}")
        d, ds = config.d_model, config.d_side
        concat, gated = config.fusion == "concat", config.fusion == "gated"
        self.side_in_scores = config.fusion == "attention"  # no side information in the value stream
        item_fields = schema.item_fields if config.use_item_fields else {}
        user_fields = schema.user_fields if config.use_user_fields else {}
        self.use_behaviour = config.use_behaviour and schema.n_behaviours > 2

        # buffers: field values per item / user row (data, saved with the weights); with
        # field_weights="count" also how often each value was listed (1 where a table has no counts)
        self.item_field_names = list(item_fields)
        self.user_field_names = list(user_fields)
        self.weighs_counts = config.field_weights == "count"
        for prefix, fields in (("item", item_fields), ("user", user_fields)):
            for name, (_, width) in fields.items():
                rows = schema.n_items if prefix == "item" else schema.n_users
                table = (tables or {}).get(f"{prefix}.{name}", torch.zeros(rows, width, dtype=torch.long))
                self.register_buffer(f"{prefix}_{name}", table.long().clone())
                if self.weighs_counts:
                    counts = (tables or {}).get(f"{prefix}.{name}{COUNTS}", (table != 0).long())
                    self.register_buffer(f"{prefix}_{name}{COUNTS}", counts.long().clone())

        self.item_id = nn.Embedding(schema.n_items, d, padding_idx=0)
        self.item_fields = nn.ModuleDict({k: FieldEmbedding(v[0], ds) for k, v in item_fields.items()})
        # concat: [id ⊕ fields] → linear; sum / gated: id + Σ P_f field_f (SideSum)
        mixed = not (concat or self.side_in_scores)  # sum or gated
        self.item_proj = nn.Linear(d + ds * len(item_fields), d) if item_fields and concat else None
        self.item_sum = SideSum(d, ds, len(item_fields), gated) if item_fields and mixed else None
        self.behaviour = nn.Embedding(schema.n_behaviours, ds, padding_idx=0) if self.use_behaviour else None
        self.user_fields = nn.ModuleDict({k: FieldEmbedding(v[0], ds) for k, v in user_fields.items()})
        n_event_side = int(self.use_behaviour) + len(user_fields)
        self.splice_proj = nn.Linear(d + ds * n_event_side, d) if n_event_side and concat else None
        self.splice_sum = SideSum(d, ds, n_event_side, gated) if n_event_side and mixed else None
        self.position = nn.Embedding(config.max_len, d)
        self.drop = nn.Dropout(config.dropout)
        n_scored = len(item_fields) + n_event_side if self.side_in_scores else 0
        self.blocks = nn.ModuleList(Block(d, config.n_heads, config.dropout, n_scored, ds)
                                    for _ in range(config.n_blocks))
        self.ln_out = nn.LayerNorm(d)
        self.apply(lambda m: init_weights(m, config.init_std))
        self._init_identity_splices()

    def _init_identity_splices(self) -> None:
        """Splice projections start as [I 0] (sum / gated: P_f = 0): every variant starts as id-only.

        Gradients still reach the side block at once (its inputs are non-zero), and
        through it the side embeddings, so side information is learned, not ignored.
        """
        d = self.config.d_model
        with torch.no_grad():
            for proj in (self.item_proj, self.splice_proj):
                if proj is not None:
                    proj.weight.zero_()
                    proj.weight[:, :d].copy_(torch.eye(d))
            for fused in (self.item_sum, self.splice_sum):
                if fused is not None:
                    for weight in fused.project.parameters():  # its blocks have no bias
                        weight.zero_()
            for attention in self.attentions():  # attention: q_f = 0, so each side score term starts at 0
                for query in attention.side_query.parameters():
                    query.zero_()

    def attentions(self) -> list[SelfAttention]:
        """Each block's self-attention, in order (typed: ``nn.ModuleList`` items are plain Modules)."""
        return [cast(Block, block).attn for block in self.blocks]

    def _field_values(self, prefix: str, name: str) -> torch.Tensor:
        return getattr(self, f"{prefix}_{name}")

    def _pooled(self, prefix: str, name: str, rows: torch.Tensor) -> torch.Tensor:
        """Field ``name``'s embedding for the entity ``rows`` (any shape) → (*rows.shape, d_side)."""
        embedding = (self.item_fields if prefix == "item" else self.user_fields)[name]
        counts = getattr(self, f"{prefix}_{name}{COUNTS}")[rows] if self.weighs_counts else None
        return embedding(self._field_values(prefix, name)[rows], counts)

    def _encode_items(self, items: torch.Tensor) -> torch.Tensor:
        """Item id ⊕ item side fields → d_model, for any shape of item index tensor."""
        return self._fuse_items(items)[0]

    def _fuse_items(self, items: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The item representation and, for "gated" fusion, each item field's gate (shaped as items)."""
        x = self.item_id(items)
        if self.item_proj is None and self.item_sum is None:
            return x, []
        side = [self._pooled("item", k, items) for k in self.item_fields]
        if self.item_proj is not None:
            return self.item_proj(torch.cat([x, *side], dim=-1)), []
        assert self.item_sum is not None  # one of the two exists (checked above)
        return self.item_sum(x, side)

    def item_representations(self) -> torch.Tensor:
        return self._encode_items(torch.arange(self.schema.n_items, device=self.item_id.weight.device))

    def represent_items(self, items: torch.Tensor) -> torch.Tensor:
        return self._encode_items(items)

    def side_field_names(self) -> list[str]:
        """Active side fields, in splice order: ``item.<f>`` …, then ``behaviour``, ``user.<f>`` …"""
        event = ["behaviour"] if self.behaviour is not None else []
        return ([f"item.{k}" for k in self.item_field_names] + event
                + [f"user.{k}" for k in self.user_field_names])

    @torch.no_grad()
    def field_gates(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each side field's gate at every position, (B, T), padding included; "gated" fusion only."""
        if self.config.fusion != "gated":
            raise ValueError(f"field gates exist only with fusion='gated', not {self.config.fusion!r}")
        return dict(zip(self.side_field_names(), self._splice(batch)[1], strict=True))

    def _event_side(self, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """M: the behaviour and user fields of each event, each (B, T, ds)."""
        B, T = batch["item_seq"].shape
        M = []
        if self.behaviour is not None:
            M.append(self.behaviour(batch["behaviour_seq"]))
        for k in self.user_fields:
            M.append(self._pooled("user", k, batch["user"]).unsqueeze(1).expand(B, T, -1))
        return M

    def side_embeddings(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each active side field's embedding at every position, (B, T, d_side), keyed and ordered as
        side_field_names: what every fusion reads (the item fields of the sequence's items, M)."""
        items = batch["item_seq"]
        side = {f"item.{k}": self._pooled("item", k, items) for k in self.item_fields}
        return dict(zip(self.side_field_names(), [*side.values(), *self._event_side(batch)], strict=True))

    def _scored_side(self, batch: dict[str, torch.Tensor]) -> list[torch.Tensor] | None:
        """"attention" fusion: every side field per position, in side_field_names order; else None."""
        return list(self.side_embeddings(batch).values()) or None if self.side_in_scores else None

    def _splice(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """E = S ⊕ M fused to (B, T, d), and the gates of "gated" fusion in side_field_names order."""
        S, gates = self._fuse_items(batch["item_seq"])  # (B, T, d)
        if self.side_in_scores:
            return S, gates
        M = self._event_side(batch)  # event side information, each (B, T, ds)
        if self.splice_proj is not None:
            return self.splice_proj(torch.cat([S, *M], dim=-1)), gates
        if self.splice_sum is not None:
            E, event_gates = self.splice_sum(S, M)
            return E, gates + event_gates
        return S, gates

    def forward(self, batch: dict[str, torch.Tensor], last_only: bool = False) -> torch.Tensor:
        """(B, T, d) for training; ``last_only``: (B, 1, d), the last block run for the last position only
        (what ``last_hidden`` needs: every earlier position's output of that block is never used)."""
        item_seq = batch["item_seq"]
        T = item_seq.shape[1]
        E = self._splice(batch)[0]  # (B, T, d)
        positions = torch.arange(self.config.max_len - T, self.config.max_len, device=item_seq.device)
        x = self.drop(E + self.position(positions))
        x = x * (item_seq != 0).unsqueeze(-1)  # padding carries nothing, not even its position
        mask, side = attention_mask(item_seq), self._scored_side(batch)
        for i, block in enumerate(self.blocks):
            x = block(x, mask, last_only=last_only and i == len(self.blocks) - 1, side=side)
        return self.ln_out(x)  # (B, T, d), or (B, 1, d)

    def last_hidden(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.forward(batch, last_only=True)[:, -1, :]
