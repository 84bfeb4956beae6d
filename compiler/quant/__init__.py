"""Precision annotations, calibration and the layer-level functional model."""

from .calibrate import LayerRange, Ranges, calibrate, float_forward
from .functional import QuantizedLayer, dense_forward, input_format, quantize_layer, run_functional
from .precision import PRESETS, LayerPrecision, precision_to_json, resolve_precision, with_layer

__all__ = ["LayerRange", "Ranges", "calibrate", "float_forward", "QuantizedLayer", "dense_forward",
           "input_format", "quantize_layer", "run_functional", "PRESETS", "LayerPrecision", "precision_to_json",
           "resolve_precision", "with_layer"]
