"""Mapping of crossbar layers onto MVMUs, cores and tiles: the result (`model.py`), the placement in naive,
spatial or temporal mode with replication (`placement.py`), bit-line packing (`packing.py`) and temporal
scheduling (`schedule.py`)."""

from .model import Block, LayerMap, Mapping
from .placement import MAPPINGS, place_layers, replicas, row_bands

__all__ = ["Block", "LayerMap", "Mapping", "MAPPINGS", "place_layers", "replicas", "row_bands"]
