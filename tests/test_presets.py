"""Published-chip hardware presets (`isa.hardware.PRESETS`: ``isaac``, ``puma-chip``): their parameters as the
papers give them (docs/cost-model.md, "Chip presets"), selectable by name everywhere, and programs on them
bit-exact against the functional model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from compiler.driver import compile_model
from compiler.runner import bit_exact, run
from isa.errors import ModelError
from isa.hardware import ISAAC, PRESETS, PUMA, PUMA_CHIP, HardwareConfig, load_hardware
from models.cnn_zoo import resnet18

ROOT = Path(__file__).resolve().parent.parent


def test_isaac_is_168_tiles_of_12_imas_of_8_crossbars_with_64kb_of_16_bit_words() -> None:
    hw = PRESETS["isaac"]
    assert (hw.tiles, hw.cores_per_tile, hw.xbars_per_core) == (168, 12, 8)
    assert hw.tiles * hw.cores_per_tile * hw.xbars_per_core == 16128  # ISAAC-CE's crossbars
    assert (hw.xbar_rows, hw.xbar_cols, hw.cell_bits, hw.dac_bits) == (128, 128, 2, 1)
    assert hw.tile_mem_words * 2 == 64 * 1024  # 64 KB of eDRAM in 16-bit words
    assert hw.adcs_per_mvmu * hw.mvmus_per_core == 8  # 8 ADCs per IMA
    assert hw.costs.adc_conversion_pj(8) == pytest.approx(16.0 / 8 / 1.28)  # 16 mW / 8 ADCs at 1.28 GS/s


def test_puma_chip_is_the_compilers_node_and_otherwise_the_simulators_puma() -> None:
    hw = PRESETS["puma-chip"]
    assert (hw.tiles, hw.cores_per_tile, hw.mvmus_per_core, hw.tile_mem_words) == (168, 8, 6, 32768)
    same = {k: v for k, v in PUMA.to_dict().items() if k not in ("name", "tiles")}
    assert {k: v for k, v in hw.to_dict().items() if k not in ("name", "tiles")} == same


@pytest.mark.parametrize("name", ["isaac", "puma-chip"])
def test_presets_load_by_name_and_as_the_base_of_a_file(name: str, tmp_path: Path) -> None:
    assert load_hardware(name) is PRESETS[name]
    assert HardwareConfig.from_dict({"preset": name}) == PRESETS[name]
    f = tmp_path / "hw.json"
    f.write_text(f'{{"preset": "{name}", "tiles": 4}}')
    assert load_hardware(f) == PRESETS[name].with_changes(tiles=4)


def small_resnet() -> tuple[object, np.ndarray]:
    x = np.random.default_rng(0).random((2, 3, 32, 32)).astype(np.float32)
    return resnet18(resolution=32, width=0.125, num_classes=10), x


@pytest.mark.parametrize(("hw", "precision"), [(ISAAC, "8bit"), (PUMA_CHIP, "16bit")])
def test_a_resnet_runs_bit_exact_on_the_chip_presets(hw: HardwareConfig, precision: str) -> None:
    model, x = small_resnet()
    cm = compile_model(model, precision, hw=hw.name, calib={"input": x})
    assert cm.hw is hw
    out = run(cm, {"input": x})
    assert bit_exact(cm, {"input": x}, out)
    assert out.stats.cycles > 0


def test_16_bit_blocks_do_not_fit_an_isaac_ima_and_the_error_says_what_does() -> None:
    model, x = small_resnet()
    with pytest.raises(ModelError, match=r"needs 16 crossbars but a core has 8 \(xbars_per_core\).*8bit"):
        compile_model(model, "16bit", hw="isaac", mapping="naive", calib={"input": x})


def test_cli_selects_a_chip_preset(tmp_path: Path) -> None:
    model, x = small_resnet()
    path = tmp_path / "r.onnx"
    path.write_bytes(model.SerializeToString())  # type: ignore[attr-defined]
    np.save(tmp_path / "x.npy", x)
    proc = subprocess.run([sys.executable, "-m", "compiler.cli", "compile", str(path), "-o", str(tmp_path / "o"),
                           "--hardware", "puma-chip", "--calib", str(tmp_path / "x.npy")],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert '"name": "puma-chip"' in (tmp_path / "o" / "manifest.json").read_text()
