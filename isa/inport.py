"""The host port: graph inputs streamed from the host into the chip instead of written into tile memory before
the run (docs/cost-model.md, "The host port").

The host is a pseudo-tile, numbered `HardwareConfig.port_tile` (the first number past the chip's tiles), beside
tile 0's router. A port input's `TensorLoc.port` lists its feeds ``(tile, ch, lo, n)``; for every real row of the
input (its H rows of W pixels x C channels in HWC order, border excluded; a flat input is one row) the host sends,
feed after feed, words [lo, lo + n) of the row as one message on channel ``ch`` from the port to ``tile``, whose
code receives it with an ordinary ``recv`` naming the port. The host link carries whole flits (`flit_bits`) at
``port_bits_per_ns``: a message arrives when its last flit has crossed the link, plus ``hop_cycles`` per router
from the port to its tile (`port_hops`). The energy is charged by the receiving ``recv`` (cost unit
``net_recv``): per flit, its bits x ``port_pj_per_bit`` (component ``port``) and the routers it crosses.

The port also takes graph outputs to the host: an output's feeds are then ``(tile, ch, c0, n)``, the producer on
``tile`` sending channels [c0, c0 + n) of every real pixel, in row-major order, with ``send`` to the port tile on
channel ``ch`` (cost unit ``net_send``, the same charges); `port_output` assembles the stored words from the
messages the port received.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from .costs import flit_bits, mem_accesses, port_hops
from .errors import XbarcError
from .hardware import HardwareConfig
from .program import TensorLoc

Channel = tuple[int, int, int]  # (source tile, destination tile, channel), as the runtime's FIFOs are keyed
Message = tuple[int, np.ndarray]  # (arrival cycle, words x batch values)


def input_rows(loc: TensorLoc, words: np.ndarray) -> np.ndarray:
    """The real rows of a batch of stored words (B, length): (B, H, W x C), border excluded; (B, 1, length) for
    a flat input."""
    words = np.asarray(words)
    if len(loc.shape) != 3:
        return words.reshape(len(words), 1, -1)
    c, h, w = loc.shape
    pt, pl, pb, pr = loc.pads
    grid = words.reshape(len(words), h + pt + pb, w + pl + pr, c)[:, pt:pt + h, pl:pl + w]
    return grid.reshape(len(words), h, w * c)


def port_messages(hw: HardwareConfig, locs: list[TensorLoc], words: dict[str, np.ndarray]) -> dict[Channel,
                                                                                                  deque[Message]]:
    """The messages the host sends for the port inputs among ``locs`` (stored words per input name), keyed as the
    runtime's FIFOs, each with its arrival cycle (module docstring). The inputs share the link: rows go out
    input by input."""
    fifos: dict[Channel, deque[Message]] = {}
    sent_bits = 0
    for loc in locs:
        if not loc.port:
            continue
        rows = input_rows(loc, words[loc.name])
        for tile, ch, lo, n in loc.port:
            if not (0 <= tile < hw.tiles and 0 <= lo and lo + n <= rows.shape[2]):
                raise XbarcError(f"input {loc.name!r}: port feed (tile {tile}, words [{lo}, {lo + n})) outside "
                                 f"the chip or the input's rows of {rows.shape[2]} words")
        for r in range(rows.shape[1]):
            for tile, ch, lo, n in loc.port:
                sent_bits += mem_accesses(hw, n) * flit_bits(hw)
                arrival = hw.cycles(sent_bits / hw.costs.port_bits_per_ns) + port_hops(hw, tile) * hw.costs.hop_cycles
                q = fifos.setdefault((hw.port_tile, tile, ch), deque())
                q.append((arrival, np.ascontiguousarray(rows[:, r, lo:lo + n].T)))
    return fifos


def port_output(hw: HardwareConfig, loc: TensorLoc, fifos: dict[Channel, deque[Message]], batch: int) -> np.ndarray:
    """The stored words (B, length), border filled with ``loc.fill``, of output ``loc`` from the messages its
    producers sent to the port (its feeds, module docstring); XbarcError when a feed's message count or size is
    not the tensor's."""
    c, h, w = loc.shape
    pt, pl, pb, pr = loc.pads
    grid = np.full((batch, h + pt + pb, w + pl + pr, c), loc.fill, dtype=np.int64)
    for tile, ch, c0, n in loc.port:
        q = fifos.get((tile, hw.port_tile, ch), deque())
        if len(q) != h * w or any(len(vals) != n for _, vals in q):
            raise XbarcError(f"output {loc.name!r}: the port received {len(q)} messages from tile {tile} on channel "
                             f"{ch}, expected {h * w} of {n} words (one per pixel)")
        pixels = np.stack([vals for _, vals in q], axis=0)  # (h * w, n, batch)
        grid[:, pt:pt + h, pl:pl + w, c0:c0 + n] = pixels.transpose(2, 0, 1).reshape(batch, h, w, n)
    return grid.reshape(batch, -1)
