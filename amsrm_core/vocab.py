"""Vocabularies: raw ids ↔ dense indices.

Index 0 is reserved for padding and index 1 for values never seen when the
vocabulary was built, so every model can embed an unknown id without crashing
(the streaming path meets new items and users all the time).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

PAD = 0
UNKNOWN = 1
_RESERVED = ("<pad>", "<unk>")


@dataclass
class Vocabulary:
    """An append-only mapping from raw string values to dense indices ≥ 2."""

    name: str
    tokens: list[str] = field(default_factory=lambda: list(_RESERVED))
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.tokens[:2] != list(_RESERVED):
            raise ValueError(f"vocabulary {self.name!r} must start with {_RESERVED}")
        self._index = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def build(cls, name: str, values: Iterable[object]) -> Vocabulary:
        """Index values in order of first appearance (deterministic for a given file)."""
        vocab = cls(name)
        for value in values:
            vocab.add(value)
        return vocab

    def __len__(self) -> int:
        return len(self.tokens)

    def add(self, value: object) -> int:
        token = str(value)
        index = self._index.get(token)
        if index is None:
            index = len(self.tokens)
            self.tokens.append(token)
            self._index[token] = index
        return index

    def lookup(self, value: object) -> int:
        """Dense index of a raw value; UNKNOWN if it was never seen."""
        return self._index.get(str(value), UNKNOWN)

    def lookup_many(self, values: Iterable[object]) -> np.ndarray:
        return np.fromiter((self.lookup(v) for v in values), dtype=np.int64)

    def encode_many(self, values: Iterable[object]) -> np.ndarray:
        """Like lookup_many, but grows the vocabulary for new values (used while loading)."""
        return np.fromiter((self.add(v) for v in values), dtype=np.int64)

    def to_json(self) -> dict:
        return {"name": self.name, "tokens": self.tokens}

    @classmethod
    def from_json(cls, data: dict) -> Vocabulary:
        return cls(data["name"], list(data["tokens"]))
