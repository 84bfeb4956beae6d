"""Precision annotations, calibration, tensor formats and the layer-level functional model."""

from .calibrate import LayerRange, Ranges, calibrate, float_forward
from .formats import Format, assign_formats
from .functional import QuantizedLayer, crossbar_layer, quantize_layer, run_functional
from .precision import PRESETS, LayerPrecision, precision_to_json, resolve_precision, with_layer

__all__ = ["LayerRange", "Ranges", "calibrate", "float_forward", "Format", "assign_formats", "QuantizedLayer",
           "crossbar_layer", "quantize_layer", "run_functional", "PRESETS", "LayerPrecision", "precision_to_json",
           "resolve_precision", "with_layer"]
