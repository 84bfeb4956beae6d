"""Graph passes and the pipeline that runs them."""

from .base import Pass, run_pipeline
from .canonicalize import CANONICALIZE, EliminateRelabel, FoldBatchNorm, FoldPad, FuseActivation, FuseBias

__all__ = ["CANONICALIZE", "EliminateRelabel", "FoldBatchNorm", "FoldPad", "FuseActivation", "FuseBias", "Pass",
           "run_pipeline"]
