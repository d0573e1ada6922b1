"""Data loaders and a registry: ``load_dataset("ml-100k")`` gives the canonical ``InteractionData``.

Every loader returns the schema of :mod:`amsrm_core.schema`; see docs/DATA.md
for what each one maps and for the generic CSV/Parquet format.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from amsrm.errors import ConfigError
from amsrm_core.schema import DataFormatError, FieldOptions, InteractionData

DATASETS = ("ml-100k", "s3rec", "taobao", "generic", "synthetic")
# "beauty" is what the S3-Rec loader was called while it only loaded Amazon Beauty (its default folder)
ALIASES = {"beauty": "s3rec", "amazon": "s3rec"}
# Folder under the data root (data_root()) for each real data set.
DATA_FOLDERS = {"ml-100k": "ml-100k", "s3rec": "amazon-beauty", "taobao": "taobao-sample"}
NAMED = ("s3rec", "generic")  # loaders that take name=: which data set in a folder, or what to call it


def data_root() -> Path:
    """Where the real data sets live: ``$AMSRM_DATA``, else ``./data`` in the working directory.

    Never relative to this file: after ``pip install .`` that would be inside site-packages.
    """
    return Path(os.environ.get("AMSRM_DATA") or Path.cwd() / "data")


def canonical_name(name: str) -> str:
    """The registry name of a data set (``"Beauty"`` → ``"s3rec"``); unknown names are a ConfigError."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in DATASETS:
        valid = ", ".join([*DATASETS, *(f"{a} (= {t})" for a, t in ALIASES.items())])
        raise ConfigError(f"unknown dataset {name!r}; valid names: {valid}")
    return key


def default_data_path(name: str) -> Path:
    """Where a bundled data set lives: ``data_root() / <folder>`` (``$AMSRM_DATA``, else ``./data``)."""
    key = canonical_name(name)
    if key not in DATA_FOLDERS:
        raise ConfigError(f"dataset {name!r} has no default data folder; pass a path")
    return data_root() / DATA_FOLDERS[key]


def load_dataset(name: str, /, path: str | Path | None = None, fields: FieldOptions | None = None,
                 **options: Any) -> InteractionData:
    """Load a data set by name; ``path`` defaults to :func:`default_data_path` where there is one.

    ``name`` is positional-only so that ``name=`` can reach the loaders that take it.
    ``fields`` says how multi-valued side fields are encoded (``FieldOptions``: repeats merged,
    width cap, minimum count).  Options go to the loader: ``generic`` takes ``users=``,
    ``items=``, ``name=`` (``path`` is the events file); ``s3rec`` takes ``name=`` (which
    ``<Name>.txt`` of a folder); ``synthetic`` takes the fields of ``SyntheticConfig`` and no path.
    """
    key = canonical_name(name)
    if options.get("name") is not None and key not in NAMED:
        raise ConfigError(f"the {key} loader takes no name (only {', '.join(NAMED)} do)")
    options = {k: v for k, v in options.items() if v is not None}
    if key == "synthetic":
        if path is not None:
            raise ConfigError("the synthetic data set is generated, it takes no path")
        from amsrm_core.data.synthetic import SyntheticConfig, generate_synthetic  # written separately

        return generate_synthetic(SyntheticConfig(**options))
    if path is None:
        if key == "generic":
            raise ConfigError("the generic loader needs path= the events file (CSV or Parquet)")
        path = default_data_path(key)
    if not Path(path).exists():
        raise DataFormatError(path, None, f"the {key} data (pass --data PATH or set AMSRM_DATA; "
                              "docs/DATA.md says where to download it)", "nothing there")
    return _loader(key)(path, fields=fields, **options)


def _loader(key: str) -> Callable[..., InteractionData]:
    """Import lazily so that loading one data set does not import the others' dependencies."""
    if key == "ml-100k":
        from amsrm_core.data.movielens import load_movielens_100k

        return load_movielens_100k
    if key == "s3rec":
        from amsrm_core.data.s3rec import load_s3rec

        return load_s3rec
    if key == "taobao":
        from amsrm_core.data.taobao import load_taobao

        return load_taobao
    from amsrm_core.data.generic import load_generic

    return load_generic
