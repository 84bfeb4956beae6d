"""Placement that bounds each tile's memory (docs/design-notes.md, "Placement that bounds each tile's memory").

The placer packs ops in graph order onto cores and tiles by their crossbars alone (`placement.place_layers`); a
tile of ``isaac`` takes up to 12 cores, hence several layers, and every layer keeps its input and output (whole
or as line buffers) on its tiles, so a tile can hold more than its memory although the chip has tiles to spare.
`place_to_fit` plans the memory of a placement (``need``: the words each tile holds, from the code generator's
plan), and, while a tile holding several ops overflows, starts the op in the middle of that tile's ops on a fresh
tile (a *break*, `place_layers(..., breaks=...)`), then places and plans again. Breaks are only added, so this
ends (at most one break per op); the order of tiles and ops is fixed, so the result is deterministic; a
placement that fits the first time is returned as is (its program is byte-identical to one placed without
this). Breaks that need more tiles than the chip has are tried fewer at a time (`place_to_fit`); it stops when
no overflowing tile holds two ops (one op alone that still overflows is the overflow error's business) or no
break that fits the chip is left. Then the layers whose partial sums fill over-full tiles pass one running sum
core to core instead (`chain_layers`).
"""

from __future__ import annotations

from typing import Callable

from isa.errors import ModelError

from .model import Mapping


def tile_ops(mapping: Mapping) -> dict[int, list[str]]:
    """The ops placed on each tile (crossbar layers with a block there, vector ops with their core there), in
    placement order (by core)."""
    spots = [(b.tile, b.core, lm.name) for lm in mapping.layers.values() for b in lm.blocks]
    spots += [(t, k, name) for name, (t, k) in mapping.vector.items()]
    out: dict[int, dict[str, None]] = {}
    for t, _, name in sorted(spots, key=lambda s: (s[0], s[1])):
        out.setdefault(t, {})[name] = None
    return {t: list(names) for t, names in out.items()}


def new_breaks(mapping: Mapping, need: dict[int, int], words: int) -> list[str]:
    """For every tile that needs more than ``words`` and holds two ops or more, the op in the middle of its ops
    (never the first: each half then holds fewer ops), the most over-full tile's first (ties by tile)."""
    ops = tile_ops(mapping)
    over = sorted((t for t in need if need[t] > words and len(ops.get(t, [])) > 1), key=lambda t: (-need[t], t))
    return list(dict.fromkeys(ops[t][len(ops[t]) // 2] for t in over))


def overflow(need: dict[int, int], words: int) -> int:
    """Words over ``words`` summed over the tiles."""
    return sum(max(0, n - words) for n in need.values())


def chain_layers(mapping: Mapping, needs: dict[int, int], need: Callable[[Mapping], dict[int, int]],
                 words: int) -> Mapping:
    """``mapping`` with the crossbar layers that have blocks on a tile needing more than ``words`` and a column
    block on several cores chained (`LayerMap.chain`: one running sum passed core to core in row order instead
    of every row block's partial sum held by the owner), when that lowers the overflow (`overflow`); else as
    it was."""
    over = {t for t, n in needs.items() if n > words}
    names = [lm.name for lm in mapping.layers.values() if not lm.chain and any(b.tile in over for b in lm.blocks)
             and len({b.where for b in lm.blocks}) > len(lm.owners())]
    if not names:
        return mapping
    for name in names:
        mapping.layers[name].chain = True
    if overflow(need(mapping), words) >= overflow(needs, words):
        for name in names:
            mapping.layers[name].chain = False
    return mapping


def place_to_fit(place: Callable[[frozenset[str]], Mapping], need: Callable[[Mapping], dict[int, int]],
                 words: int) -> Mapping:
    """The placement ``place(breaks)`` with the breaks this finds (module docstring) so that every tile holding
    several ops holds at most ``words`` (a tile's memory) by ``need``; ``place(frozenset())`` when that fits.
    When the breaks of one step need more tiles than the chip has, the first half of them is tried (the most
    over-full tiles' first), down to one; a break that alone does not fit the chip is not tried again. It stops
    when no break is left to try; then the layers on over-full tiles are chained where that helps
    (`chain_layers`; the code generator names what still overflows)."""
    breaks: frozenset[str] = frozenset()
    refused: set[str] = set()
    mapping = place(breaks)
    while True:
        needs = need(mapping)
        more = [b for b in new_breaks(mapping, needs, words) if b not in breaks | refused]
        if not more:
            return chain_layers(mapping, needs, need, words)
        while more:
            try:
                mapping = place(breaks | set(more))
            except ModelError:  # more tiles than the chip has: fewer breaks
                if len(more) == 1:
                    refused.add(more[0])
                more = more[:len(more) // 2]
            else:
                breaks |= set(more)
                break
