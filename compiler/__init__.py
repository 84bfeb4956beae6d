"""xbarc compiler: ONNX -> graph IR -> precision -> mapping -> isa.Program."""

from .driver import CompiledModel, compile_model, import_graph, load_compiled

__all__ = ["CompiledModel", "compile_model", "import_graph", "load_compiled"]
