"""Mapping of crossbar layers onto MVMUs, cores and tiles."""

from .naive import Block, LayerMap, Mapping, map_naive

__all__ = ["Block", "LayerMap", "Mapping", "map_naive"]
