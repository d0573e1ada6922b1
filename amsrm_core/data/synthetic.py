"""A seeded synthetic behaviour data set in which side information carries real signal.

Why synthetic: demos and CI need data that installs with the code, and tests need
a data set where we *know* side information should help, so that "AMSRM beats an
id-only model" is a check that can fail.

Generative story (every random draw comes from one seeded generator):
- items belong to a category and a brand (brands live inside one category), with
  Zipf popularity inside their category;
- a user's gender and age band pick a segment, and each segment prefers a few
  categories (so user fields predict *what* a user browses);
- each event has a behaviour type; after a ``buy`` the need is met and the user moves
  to a complementary category (a fixed sparse category→category transition), after
  other behaviours they mostly stay in the category (so item category and behaviour
  type predict *what comes next*);
- users never repeat an item; timestamps are on one global clock (seconds).

With many items and few events per item, an id-only model must learn each item's
category from co-occurrence, while a side-information model reads it directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from amsrm_core.schema import InteractionData, LoadReport, build_interactions

GENDERS = ("F", "M")
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55+")
BEHAVIOUR_TYPES = ("click", "like", "share", "buy")
BEHAVIOUR_PROBS = (0.6, 0.2, 0.08, 0.12)


@dataclass
class SyntheticConfig:
    n_users: int = 800  # enough users for a stable validation metric, small enough for CI
    n_items: int = 2000  # many items per category so ids alone are hard to learn
    n_categories: int = 24
    brands_per_category: int = 3
    min_events: int = 20  # per user; the paper's best window n=30 should see full windows
    max_events: int = 60
    stay_probability: float = 0.75  # after a non-buy event, stay in the category
    zipf_exponent: float = 1.1  # popularity skew inside a category
    start_span_s: int = 30 * 24 * 3600  # users start within a month on one clock
    mean_gap_s: int = 3600
    seed: int = 0


def _category_transitions(rng: np.random.Generator, n: int) -> np.ndarray:
    """A sparse stochastic matrix: each category leads to three complementary ones."""
    matrix = np.zeros((n, n))
    for c in range(n):
        targets = rng.choice([x for x in range(n) if x != c], size=3, replace=False)
        matrix[c, targets] = rng.dirichlet(np.ones(3) * 2.0)
    return matrix


def generate_synthetic(config: SyntheticConfig | None = None) -> InteractionData:
    """Generate the data set described in the module docstring."""
    cfg = config or SyntheticConfig()
    rng = np.random.default_rng(cfg.seed)
    n_cat = cfg.n_categories

    item_category = rng.integers(0, n_cat, size=cfg.n_items)
    item_brand = item_category * cfg.brands_per_category + rng.integers(
        0, cfg.brands_per_category, size=cfg.n_items
    )
    items_by_category = [np.flatnonzero(item_category == c) for c in range(n_cat)]
    popularity = []
    for members in items_by_category:
        weights = 1.0 / np.arange(1, len(members) + 1) ** cfg.zipf_exponent
        popularity.append(rng.permutation(weights / weights.sum()))

    transitions = _category_transitions(rng, n_cat)
    n_segments = len(GENDERS) * len(AGE_BANDS)
    segment_pref = rng.dirichlet(np.full(n_cat, 0.15), size=n_segments)

    users, items, times, behaviours = [], [], [], []
    user_features: dict[str, dict[str, str]] = {"gender": {}, "age_band": {}}
    for u in range(cfg.n_users):
        raw_user = f"u{u}"
        gender = int(rng.integers(len(GENDERS)))
        age = int(rng.integers(len(AGE_BANDS)))
        user_features["gender"][raw_user] = GENDERS[gender]
        user_features["age_band"][raw_user] = AGE_BANDS[age]
        pref = segment_pref[gender * len(AGE_BANDS) + age]

        length = int(rng.integers(cfg.min_events, cfg.max_events + 1))
        clock = int(rng.integers(0, cfg.start_span_s))
        category = int(rng.choice(n_cat, p=pref))
        seen: set[int] = set()
        for _ in range(length):
            members = items_by_category[category]
            p = popularity[category].copy()
            taken = [k for k, i in enumerate(members) if i in seen]
            p[taken] = 0.0
            if p.sum() == 0:  # user exhausted the category: fall back to their preference
                category = int(rng.choice(n_cat, p=pref))
                continue
            item = int(members[rng.choice(len(members), p=p / p.sum())])
            behaviour = int(rng.choice(len(BEHAVIOUR_TYPES), p=BEHAVIOUR_PROBS))
            seen.add(item)
            users.append(raw_user)
            items.append(f"i{item}")
            times.append(clock)
            behaviours.append(BEHAVIOUR_TYPES[behaviour])
            clock += 1 + int(rng.exponential(cfg.mean_gap_s))
            if BEHAVIOUR_TYPES[behaviour] == "buy":
                category = int(rng.choice(n_cat, p=transitions[category]))
            elif rng.random() > cfg.stay_probability:
                category = int(rng.choice(n_cat, p=pref))

    item_features = {
        "category": {f"i{i}": f"c{item_category[i]}" for i in range(cfg.n_items)},
        "brand": {f"i{i}": f"b{item_brand[i]}" for i in range(cfg.n_items)},
    }
    return build_interactions(
        "synthetic",
        users,
        items,
        np.asarray(times, dtype=np.int64),
        behaviours=behaviours,
        event_ids=[f"synthetic-{i}" for i in range(len(users))],
        user_features=user_features,
        item_features=item_features,
        report=LoadReport(rows_read=len(users)),
    )
