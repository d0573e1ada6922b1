"""The paper's experiments (issue 3): model comparison, sequence length, ablation.

``compare.py``, ``seqlen.py`` and ``ablation.py`` hold one experiment each, ``grids.py``
the hyper-parameter grids, ``store.py`` the resumable run store, ``plots.py`` the
figures, ``common.py`` what they share and ``cli.py`` the ``amsrm experiment`` command.
"""

from amsrm_core.experiments import cli

__all__ = ["cli"]
