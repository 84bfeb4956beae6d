"""The shape the design asks for, checked on the source: operands are read and written by name, not position."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Positional operand access: ``o[2]``, ``ops[0]``, ``instr.args[1]``, a table-order tuple handed to `Instr.of`.
POSITIONAL = re.compile(r"\b(o|ops|operands)\[\d+\]|\.args\[|\bInstr(\.of)?\(\s*\"")


def _sources(*globs: str) -> list[Path]:
    return sorted(p for g in globs for p in ROOT.glob(g))


def test_no_positional_operand_access_in_handlers_codegen_and_costs() -> None:
    files = _sources("runtime/*.py", "compiler/codegen/*.py", "compiler/search/cost.py", "isa/costs.py")
    assert len(files) > 5
    hits = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p in files
            for n, line in enumerate(p.read_text().splitlines(), 1) if POSITIONAL.search(line)]
    assert not hits, "\n".join(hits)


def test_compiler_does_not_import_the_bundled_models_package() -> None:
    """Data come in from the CLI (`compiler.data.DatasetLoader`): only the CLI imports `models`."""
    files = [p for p in _sources("compiler/**/*.py") if p.name != "cli.py"]
    hits = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p in files
            for n, line in enumerate(p.read_text().splitlines(), 1)
            if re.match(r"\s*(from|import)\s+models\b", line)]
    assert not hits, "\n".join(hits)


def test_compile_without_a_loader_names_what_to_pass() -> None:
    import pytest

    from compiler import compile_model
    from isa.errors import ConfigError

    with pytest.raises(ConfigError, match="no data loader given: pass data="):
        compile_model(ROOT / "models" / "mlp_digits.onnx", "8bit")
