"""Code generation: mapped graph -> isa.Program (`generate`; the steps are in `generate.py`'s docstring)."""

from .generate import generate
from .plan import CommPlan, plan_communication

__all__ = ["generate", "CommPlan", "plan_communication"]
