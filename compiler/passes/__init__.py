"""Graph passes and the pipeline that runs them."""

from .base import Pass, run_pipeline
from .canonicalize import CANONICALIZE, EliminateRelabel, FuseActivation, FuseBias

__all__ = ["CANONICALIZE", "EliminateRelabel", "FuseActivation", "FuseBias", "Pass", "run_pipeline"]
