"""What every process of the project shares, and the command line that assembles them.

Two layers live here, the top and the bottom of the project's one-way dependencies:

- neutral modules any package may import: ``settings`` (the one typed configuration),
  ``logs`` (text or JSON lines), ``config_reference`` (docs/CONFIG.md from the settings);
- ``cli``: the composition root of the ``amsrm`` command, the only module that imports every
  package (the stream layer lazily, per command).

    amsrm_core  ←  producers  ←  streams  ←  amsrm.cli        (each imports only to its left)
         ↖___________↖_____________↖____  amsrm.settings, amsrm.logs

``make lint`` checks this layering (import-linter, ``[tool.importlinter]`` in pyproject.toml).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("amsrm")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
