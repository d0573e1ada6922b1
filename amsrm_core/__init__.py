"""AMSRM core: data layer, evaluation protocol, models and training harness."""

__version__ = "0.1.0"
