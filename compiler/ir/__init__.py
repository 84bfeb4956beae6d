"""Graph IR: ops, verifier, text dump."""

from .graph import ACTIVATIONS, CROSSBAR_KINDS, Graph, Op, Value, broadcast_param, dump, verify

__all__ = ["ACTIVATIONS", "CROSSBAR_KINDS", "Graph", "Op", "Value", "broadcast_param", "dump", "verify"]
