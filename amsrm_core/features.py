"""What side information a data set offers a model, and the tables that carry it.

Models keep the item and user field tables as buffers (saved with the weights), so
a batch only needs item ids, behaviour ids and user ids — the same inputs the
stream worker has.  Unknown users and items (index 1) have all-zero rows: no side
information, never a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from amsrm_core.schema import InteractionData


@dataclass
class FeatureSchema:
    n_items: int  # item vocabulary size, reserved indices included
    n_users: int
    n_behaviours: int  # behaviour vocabulary size; 2 means the data set has none
    item_fields: dict[str, tuple[int, int]] = field(default_factory=dict)  # name → (vocab size, width)
    user_fields: dict[str, tuple[int, int]] = field(default_factory=dict)

    @classmethod
    def from_data(cls, data: InteractionData) -> FeatureSchema:
        return cls(
            n_items=len(data.item_vocab),
            n_users=len(data.user_vocab),
            n_behaviours=len(data.behaviour_vocab),
            item_fields={k: (len(f.vocab), f.width) for k, f in data.item_fields.items()},
            user_fields={k: (len(f.vocab), f.width) for k, f in data.user_fields.items()},
        )

    def to_json(self) -> dict:
        return {
            "n_items": self.n_items,
            "n_users": self.n_users,
            "n_behaviours": self.n_behaviours,
            "item_fields": {k: list(v) for k, v in self.item_fields.items()},
            "user_fields": {k: list(v) for k, v in self.user_fields.items()},
        }

    @classmethod
    def from_json(cls, data: dict) -> FeatureSchema:
        return cls(
            n_items=data["n_items"],
            n_users=data["n_users"],
            n_behaviours=data["n_behaviours"],
            item_fields={k: (v[0], v[1]) for k, v in data["item_fields"].items()},
            user_fields={k: (v[0], v[1]) for k, v in data["user_fields"].items()},
        )


COUNTS = "__count"  # suffix of a field's counts table / buffer (how often each value was listed)


def feature_tables(data: InteractionData) -> dict[str, torch.Tensor]:
    """Field tables keyed ``item.<field>`` / ``user.<field>``, as models name their buffers, and
    ``<prefix>.<field>__count`` for a field whose table kept counts (a model may weigh by them)."""
    tables = {}
    for prefix, fields in (("item", data.item_fields), ("user", data.user_fields)):
        for name, table in fields.items():
            tables[f"{prefix}.{name}"] = torch.from_numpy(table.values)
            if table.counts is not None:
                tables[f"{prefix}.{name}{COUNTS}"] = torch.from_numpy(table.counts)
    return tables
