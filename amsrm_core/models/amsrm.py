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
  cannot be an initialisation artefact (ANCHORS.md), and unhelpful fields can stay
  quiet instead of scrambling the item signal from step one.
- Items are represented once — id ⊕ item fields → linear — and that representation
  is used both for the input sequence and for scoring (tied, as in SASRec).
- Pre-layer-norm blocks and learned positions counted from the right, so the
  latest event always has the same position whatever the padding.
- Full softmax cross-entropy by default (see ``training/losses.py``).
With every side field switched off the model is exactly SASRec with those choices.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from amsrm_core.features import FeatureSchema
from amsrm_core.models.base import Recommender, attention_mask, init_weights


class FieldEmbedding(nn.Module):
    """Embeds a categorical field whose rows hold up to W values (0 = none): mean of the values."""

    def __init__(self, vocab_size: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=0)

    def forward(self, values: torch.Tensor) -> torch.Tensor:  # (..., W) → (..., dim)
        present = (values != 0).unsqueeze(-1).float()
        summed = (self.embedding(values) * present).sum(-2)
        return summed / present.sum(-2).clamp(min=1.0)


class SelfAttention(nn.Module):
    """Multi-head self-attention with explicit Q, K, V projections (the paper's W_Q, W_K, W_V)."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"d_model {dim} is not divisible by n_heads {heads}")
        self.heads, self.dropout = heads, dropout
        self.query, self.key, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = (p(x).view(B, T, self.heads, C // self.heads).transpose(1, 2)  # (B, nh, T, hs)
                   for p in (self.query, self.key, self.value))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(LN x), then x + FFN(LN x), dropout on each branch."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.ln_attn, self.ln_ffn = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, dropout)
        self.ffn = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln_attn(x), mask))
        return x + self.drop(self.ffn(self.ln_ffn(x)))


@dataclass
class AMSRMConfig:
    max_len: int = 30  # window n; the paper's best of {20, 30, 50, 100}
    d_model: int = 64  # attention width, also the item representation width
    d_side: int = 16  # embedding width of each side field before splicing
    n_blocks: int = 2  # stacked self-attention blocks
    n_heads: int = 1  # SASRec's setting; more heads did not help it on small data
    dropout: float = 0.2  # 0.5 hurts on MovieLens (ANCHORS.md)
    use_item_fields: bool = True  # item side info (category, genres, brand, tags)
    use_behaviour: bool = True  # behaviour type / rating level of each event
    use_user_fields: bool = True  # user side info (gender, age, occupation, …)
    loss: str = "ce"  # ce | sampled | bce (see training/losses.py)
    n_negatives: int = 256  # only for loss="sampled"
    init_std: float = 0.1  # N(0, 0.1²) init; PyTorch's N(0, 1) embeddings learn slowly with CE


class AMSRM(Recommender):
    def __init__(self, config: AMSRMConfig, schema: FeatureSchema,
                 tables: dict[str, torch.Tensor] | None = None) -> None:
        super().__init__(config, schema)
        d, ds = config.d_model, config.d_side
        item_fields = schema.item_fields if config.use_item_fields else {}
        user_fields = schema.user_fields if config.use_user_fields else {}
        self.use_behaviour = config.use_behaviour and schema.n_behaviours > 2

        # buffers: field values per item / user row (data, saved with the weights)
        self.item_field_names = list(item_fields)
        self.user_field_names = list(user_fields)
        for prefix, fields in (("item", item_fields), ("user", user_fields)):
            for name, (_, width) in fields.items():
                rows = schema.n_items if prefix == "item" else schema.n_users
                table = (tables or {}).get(f"{prefix}.{name}", torch.zeros(rows, width, dtype=torch.long))
                self.register_buffer(f"{prefix}_{name}", table.long().clone())

        self.item_id = nn.Embedding(schema.n_items, d, padding_idx=0)
        self.item_fields = nn.ModuleDict({k: FieldEmbedding(v[0], ds) for k, v in item_fields.items()})
        self.item_proj = nn.Linear(d + ds * len(item_fields), d) if item_fields else None
        self.behaviour = nn.Embedding(schema.n_behaviours, ds, padding_idx=0) if self.use_behaviour else None
        self.user_fields = nn.ModuleDict({k: FieldEmbedding(v[0], ds) for k, v in user_fields.items()})
        n_event_side = int(self.use_behaviour) + len(user_fields)
        self.splice_proj = nn.Linear(d + ds * n_event_side, d) if n_event_side else None
        self.position = nn.Embedding(config.max_len, d)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(d, config.n_heads, config.dropout) for _ in range(config.n_blocks))
        self.ln_out = nn.LayerNorm(d)
        self.apply(lambda m: init_weights(m, config.init_std))
        self._init_identity_splices()

    def _init_identity_splices(self) -> None:
        """Splice projections start as [I 0]: every variant starts as the id-only model.

        Gradients still reach the side block at once (its inputs are non-zero), and
        through it the side embeddings, so side information is learned, not ignored.
        """
        d = self.config.d_model
        with torch.no_grad():
            for proj in (self.item_proj, self.splice_proj):
                if proj is not None:
                    proj.weight.zero_()
                    proj.weight[:, :d].copy_(torch.eye(d))

    def _field_values(self, prefix: str, name: str) -> torch.Tensor:
        return getattr(self, f"{prefix}_{name}")

    def _encode_items(self, items: torch.Tensor) -> torch.Tensor:
        """Item id ⊕ item side fields → d_model, for any shape of item index tensor."""
        x = self.item_id(items)
        if self.item_proj is None:
            return x
        side = [emb(self._field_values("item", k)[items]) for k, emb in self.item_fields.items()]
        return self.item_proj(torch.cat([x, *side], dim=-1))

    def item_representations(self) -> torch.Tensor:
        return self._encode_items(torch.arange(self.schema.n_items, device=self.item_id.weight.device))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        item_seq = batch["item_seq"]
        B, T = item_seq.shape
        S = self._encode_items(item_seq)  # (B, T, d)
        M = []  # event side information, each (B, T, ds)
        if self.behaviour is not None:
            M.append(self.behaviour(batch["behaviour_seq"]))
        for k, emb in self.user_fields.items():
            M.append(emb(self._field_values("user", k)[batch["user"]]).unsqueeze(1).expand(B, T, -1))
        E = self.splice_proj(torch.cat([S, *M], dim=-1)) if self.splice_proj is not None else S  # (B, T, d)
        positions = torch.arange(self.config.max_len - T, self.config.max_len, device=item_seq.device)
        x = self.drop(E + self.position(positions))
        x = x * (item_seq != 0).unsqueeze(-1)  # padding carries nothing, not even its position
        mask = attention_mask(item_seq)
        for block in self.blocks:
            x = block(x, mask)
        return self.ln_out(x)  # (B, T, d)
