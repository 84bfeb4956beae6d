"""Train the GRU (16 hidden units, ``linear_before_reset=1``) on BasicMotions and export
``models/gru_basic_motions.onnx`` (`models.train_recurrent`). Run: ``python -m models.train_gru_basic_motions``."""

from __future__ import annotations

from pathlib import Path

from models.train_recurrent import RecurrentSpec, main

SPEC = RecurrentSpec("gru", "basic_motions", hidden=16, epochs=100, lr=5e-3,
                     path=Path(__file__).resolve().parent / "gru_basic_motions.onnx")

if __name__ == "__main__":
    main(SPEC)
