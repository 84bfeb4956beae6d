"""Graph passes and the pipeline that runs them."""

from .affine import FoldAffine, reject_unfolded
from .base import Pass, run_pipeline
from .canonicalize import CANONICALIZE, EliminateRelabel, FoldPad, FuseActivation

__all__ = ["CANONICALIZE", "EliminateRelabel", "FoldAffine", "FoldPad", "FuseActivation", "Pass", "reject_unfolded",
           "run_pipeline"]
