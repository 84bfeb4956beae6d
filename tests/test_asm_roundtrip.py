"""Round trips: record -> text -> record -> bits -> record -> text, per instruction and per program."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from isa.assembler import assemble, assemble_instr, parse
from isa.encoding import decode_instr, decode_program, encode_instr, encode_program
from isa.hardware import DEFAULT
from isa.printer import attach_source, format_instr, format_program
from isa.program import CoreCode, Instr, Program
from isa.table import BY_MNEMONIC, INSTRUCTIONS, NO_BASE, Field, InstrSpec

HW = DEFAULT


def operand(f: Field, n_instrs: int = 1000) -> st.SearchStrategy:
    """Legal values of ``f`` on ``HW`` (branch targets in [0, n_instrs])."""
    if f.kind == "reg":
        return st.integers(0, HW.core_regs - 1)
    if f.kind == "mask":
        return st.integers(1, (1 << HW.mvmus_per_core) - 1)
    if f.kind == "label":
        return st.integers(0, n_instrs)
    if f.kind == "mem":
        return st.tuples(st.one_of(st.just(NO_BASE), st.integers(0, HW.core_regs - 1)),
                         st.integers(0, HW.tile_mem_words - 1))
    hi = min(f.hi, HW.tiles - 1) if f.name == "tile" else f.hi
    return st.integers(f.lo, hi)


NODES = st.one_of(st.none(), st.from_regex(r"/[A-Za-z0-9_/.:]{1,24}", fullmatch=True))


@st.composite
def instrs(draw: st.DrawFn, spec: InstrSpec | None = None, n_instrs: int = 1000) -> Instr:
    spec = spec or draw(st.sampled_from(INSTRUCTIONS))
    args = tuple(draw(operand(f, n_instrs)) for f in spec.fields)
    return Instr.of(spec.mnemonic, args, draw(NODES))


def test_examples_from_the_syntax_reference() -> None:
    cases = {
        "mvm 0b11, ibits=16, adc=10, shift=12, obits=32, enc=0, skip=-1": ("mvm", (3, 16, 10, 12, 32, 0, -1)),
        "add r1, r2, r3, n=128, w=32": ("add", (1, 2, 3, 128, 32)),
        "load r1024, [r5+256], n=64": ("load", (1024, (5, 256), 64)),
        "store [300], r1024, n=64, count=1": ("store", ((NO_BASE, 300), 1024, 64, 1)),
        "rqnt r1, r2, n=4, shift=-3, w=8": ("rqnt", (1, 2, 4, -3, 8)),
        "halt": ("halt", ()),
    }
    for text, (op, args) in cases.items():
        instr = assemble_instr(text)
        assert (instr.op, instr.args) == (op, args)
        assert format_instr(instr) == text


def test_non_canonical_spellings_are_accepted() -> None:
    assert assemble_instr("load r1,[r2],n=4").args == (1, (2, 0), 4)
    assert assemble_instr("mvm 0b0001, ibits=8, adc=9, shift=0, obits=16, enc=0, skip=-1").args[0] == 1
    assert format_instr(assemble_instr("mvm 0b0001, ibits=8, adc=9, shift=0, obits=16, enc=0, skip=-1")).startswith("mvm 0b1,")


def test_parse_pieces_with_start_symbols() -> None:
    op = parse("[r5+16]", "operand")
    assert (op.kind, op.value, op.pos.col) == ("mem", (5, 16), 1)
    ins = parse("blt r1, r2, top", "instruction")
    assert ins.mnemonic == "blt" and [o.kind for o in ins.operands] == ["reg", "reg", "label"]


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_every_instruction_round_trips(data: st.DataObject) -> None:
    for spec in INSTRUCTIONS:
        instr = data.draw(instrs(spec))
        text = format_instr(instr)
        labels = {f"L{v}": v for f, v in zip(spec.fields, instr.args) if f.kind == "label"}
        back = assemble_instr(text, labels)
        assert back.same_code(instr)
        word = encode_instr(back)
        assert 0 <= word < 1 << 128 and word >> 120 == spec.opcode
        decoded = decode_instr(word)
        assert decoded.same_code(instr)
        assert format_instr(decoded) == text


@st.composite
def programs(draw: st.DrawFn) -> Program:
    keys = draw(st.lists(st.tuples(st.integers(0, HW.tiles - 1), st.integers(0, HW.cores_per_tile - 1)),
                         min_size=1, max_size=4, unique=True))
    program = Program(hw=HW)
    for tile, core in keys:
        n = draw(st.integers(0, 12))
        program.cores.append(CoreCode(tile, core, [draw(instrs(n_instrs=n)) for _ in range(n)]))
    return program


@settings(max_examples=60, deadline=None)
@given(programs())
def test_program_round_trips_through_text_and_binary(program: Program) -> None:
    text = format_program(program)
    again = assemble(text, "p.s")
    assert [(c.tile, c.core) for c in again.cores] == [(c.tile, c.core) for c in program.cores]
    for a, b in zip(again.cores, program.cores):
        assert a.instrs == b.instrs  # provenance included
    assert format_program(again) == text
    data = encode_program(again)
    decoded = decode_program(data)
    assert format_program(decoded) == format_program(program, provenance=False)
    assert encode_program(assemble(format_program(decoded))) == data


LOOP = """\
; hand-written, non-canonical spacing and label names
.core 0 1
top:
    mvm 0b11, ibits=16, adc=10, shift=12, obits=32, enc=0, skip=-1 ; @/fc1/Gemm
  add r1, r2, r3, n=128, w=32      ;   @/fc1/Add
    iaddi r7, r7, imm=1
    blt r7, r8, top
    jmp done
    halt
done:

.core 3 0
    set r9, imm=-5   ; a plain comment
    beq r9, r9, self
self:
    halt
"""


def test_multi_core_program_with_labels_and_provenance() -> None:
    p = assemble(LOOP, "loop.s")
    c0, c1 = p.cores
    assert (c0.tile, c0.core, c1.tile, c1.core) == (0, 1, 3, 0)
    assert c0.lines == [4, 5, 6, 7, 8, 9] and c1.lines == [13, 14, 16]
    assert [i.node for i in c0.instrs] == ["/fc1/Gemm", "/fc1/Add", None, None, None, None]
    assert c0.instrs[3].args == (7, 8, 0) and c0.instrs[4].args == (6,) and c1.instrs[1].args == (9, 9, 2)
    assert p.source == LOOP.splitlines() and p.filename == "loop.s"
    text = format_program(p)
    assert text.splitlines()[3:6] == [
        "L0:",
        "    mvm 0b11, ibits=16, adc=10, shift=12, obits=32, enc=0, skip=-1  ; @/fc1/Gemm",
        "    add r1, r2, r3, n=128, w=32                         ; @/fc1/Add",
    ]
    assert "    jmp L6\n    halt\nL6:\n\n.core 3 0\n" in text
    assert format_program(assemble(text)) == text


def test_provenance_column_and_long_lines() -> None:
    short = Instr.of("halt", (), "/n")
    long = Instr.of("store", ((123, 4567), 4000, 65535, 255), "/very/long")
    text = format_program(Program(hw=HW, cores=[CoreCode(0, 0, [short, long])]))
    lines = text.splitlines()
    assert lines[3].index(";") == 56 and lines[3].endswith("; @/n")
    assert lines[4].index(";") == 56 and lines[4].startswith("    store [r123+4567], r4000, n=65535, count=255 ")
    wide = Instr.of("mvm", (255, 32, 16, -128, 64, 0, -1), "/x")
    text = format_program(Program(hw=HW, cores=[CoreCode(0, 0, [wide])]))
    assert text.splitlines()[3] == "    mvm 0b11111111, ibits=32, adc=16, shift=-128, obits=64, enc=0, skip=-1  ; @/x"
    assert "@" not in format_program(Program(hw=HW, cores=[CoreCode(0, 0, [wide])]), provenance=False)


def test_attach_source_records_lines_of_printed_program() -> None:
    p = Program(hw=HW, cores=[CoreCode(0, 0, [Instr.of("jmp", (1,)), Instr.of("halt", ())]),
                              CoreCode(1, 2, [Instr.of("halt", (), "/end")])])
    assert attach_source(p) is p
    assert p.source == format_program(p).splitlines()
    for c in p.cores:
        for pc, line in enumerate(c.lines or []):
            assert p.source[line - 1].strip().startswith(format_instr(c.instrs[pc], {1: "L1"}))
    assert p.cores[1].lines == [9]
    assert assemble("\n".join(p.source)).cores[0].lines == p.cores[0].lines


def test_uses_table_field_names_for_immediates() -> None:
    assert format_instr(Instr.of("shli", (1, 2, 3, 4, 5))) == "shli r1, r2, sh=3, n=4, w=5"
    assert BY_MNEMONIC["send"].field("tile").kind == "uimm"
