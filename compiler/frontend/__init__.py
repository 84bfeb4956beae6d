"""ONNX frontend: one converter per op, every unsupported op reported at once."""

from .converters import CONVERTERS
from .onnx_frontend import HOST_OPS, FrontendResult, check_reference, host_eval, import_onnx, load_model

__all__ = ["CONVERTERS", "HOST_OPS", "FrontendResult", "check_reference", "host_eval", "import_onnx", "load_model"]
