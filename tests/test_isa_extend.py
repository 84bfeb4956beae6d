"""Adding an instruction is one table row plus its handler: a toy instruction defined here through the public API
assembles, prints, encodes, decodes, is charged by the cost model and runs."""

from __future__ import annotations

import numpy as np

import isa
import runtime
from isa import assemble, decode_program, encode_program, format_program
from isa.table import InstrSpec, reg, uimm

TOY = InstrSpec("absd", 0x24, (reg("d", "destination"), reg("a", "first source"), reg("b", "second source"),
                               uimm("n", 16, 1, doc="vector length")), "alu", "alu_add", "d[i] = |a[i] - b[i]|")

TEXT = """; xbarc assembly

.core 0 0
    load r4096, [0], n=4
    load r4100, [4], n=4
    absd r4104, r4096, r4100, n=4
    store [8], r4104, n=4, count=0
    halt
"""


def test_toy_instruction_assembles_encodes_prints_and_runs() -> None:
    absd = isa.define_instruction(TOY)
    try:
        @runtime.handler(absd)
        def _absd(c: runtime.CoreState, i: isa.Instr, lat: int) -> None:
            r, n = c.regs, getattr(i, "n")
            r[i.d:i.d + n] = np.abs(r[i.a:i.a + n] - r[i.b:i.b + n])  # type: ignore[attr-defined]

        made = absd(d=4104, a=4096, b=4100, n=4)  # a keyword constructor, like isa.ops'
        assert made.args == (4104, 4096, 4100, 4) and made.spec is TOY
        program = assemble(TEXT)
        assert program.cores[0].instrs[2].same_code(made)
        assert format_program(program) == TEXT
        binary = encode_program(program)
        assert decode_program(binary).cores[0].instrs == [i.with_node(None) for i in program.cores[0].instrs]
        program.inputs = [isa.TensorLoc("x", 0, 0, 8, 16, 0, (8,))]
        program.outputs = [isa.TensorLoc("y", 0, 8, 4, 16, 0, (4,))]
        x = np.array([[1, 5, -3, 7, 4, 2, 2, -7], [0, 0, 0, 0, 1, -1, 2, -2]])
        result = runtime.Machine(program).run({"x": x})
        assert result.outputs["y"].tolist() == [[3, 3, 5, 14], [1, 1, 2, 2]]
        cost = result.stats.per_instruction["absd"]
        assert cost["count"] == 1 and cost["energy_pj"] > 0 and cost["cycles"] == 1
    finally:
        runtime.HANDLERS.pop("absd", None)
        isa.remove_instruction("absd")
    assert "absd" not in isa.BY_MNEMONIC
