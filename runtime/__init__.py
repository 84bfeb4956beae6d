"""xbarc's runtime: executes an `isa.Program` on a batch in lock step, with cycle and energy accounting.

``Machine(program).run(inputs) -> RunResult(outputs, stats)``. Imports only `isa` and numpy.
"""

from isa.costs import COMPONENTS, COST_UNITS, Cost, CostContext, MvmuShape, instr_cost
from .handlers import HANDLERS, decoder, handler
from .machine import Machine, RunResult, describe_wait, instr_text
from .state import CoreState
from .stats import Stats

__all__ = [
    "Machine", "RunResult", "Stats",
    "COMPONENTS", "COST_UNITS", "Cost", "CostContext", "MvmuShape", "instr_cost",
    "HANDLERS", "handler", "decoder", "CoreState", "describe_wait", "instr_text",
]
