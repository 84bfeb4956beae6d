"""Train the LSTM (16 hidden units) on ItalyPowerDemand and export ``models/lstm_italy_power.onnx``
(`models.train_recurrent`). Run: ``python -m models.train_lstm_italy_power``."""

from __future__ import annotations

from pathlib import Path

from models.train_recurrent import RecurrentSpec, main

SPEC = RecurrentSpec("lstm", "italy_power", hidden=16, epochs=60,
                     path=Path(__file__).resolve().parent / "lstm_italy_power.onnx")

if __name__ == "__main__":
    main(SPEC)
