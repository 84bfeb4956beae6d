"""The source documents' experiments, measured on our models, each table with the seed's figure beside ours.

Usage: python benchmarks/seed_experiments.py [--seeds 000 001 002] [--images 360]
Numbers come from compiling and running on the reference runtime (energy, cycles, accuracy on the digits test
split); the cost model is not tuned to reproduce the seeds. Differences are discussed in the closing notes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import table  # noqa: E402

from compiler import compile_model, runner  # noqa: E402
from isa import numerics as nx  # noqa: E402
from models.datasets import load_for_shape, load_dataset  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MLP = ROOT / "models" / "mlp_digits.onnx"
LENET = ROOT / "models" / "lenet5_digits.onnx"
LENET_MNIST = ROOT / "models" / "lenet5_mnist.onnx"
DATA = {MLP: "digits", LENET: "digits32", LENET_MNIST: "mnist"}


def run(model: Path, cfg: Any, n: int, hw: Any = None) -> dict[str, Any]:
    """Compile with ``cfg`` and evaluate on the first n test images (accuracy, energy, cycles)."""
    x, y = load_dataset(DATA[model], "test")
    # the seeds' accelerators allocate every crossbar
    cm = compile_model(model, cfg, hw=hw, mapping="naive", data=load_for_shape)
    r = runner.evaluate(cm, x[:n], y[:n], check=False)
    r["cm"] = cm
    return r


def seed000(n: int) -> None:
    """ADC resolution 8 -> 1 bits on the MLP: energy and cycles (seed: MLP energy -31.5/-54.7/-69.6/-73.9 %,
    cycles -21.1/-42.1/-63.2/-73.5 % at 6/4/2/1 bits)."""
    seed = {6: (31.5, 21.1), 4: (54.7, 42.1), 2: (69.6, 63.2), 1: (73.9, 73.5)}
    for hw, label in ((None, "default"), ("puma", "puma")):
        rows, base = [], None
        for bits in (8, 6, 4, 2, 1):
            r = run(MLP, {"preset": "16bit", "default": {"adc_bits": bits}}, n, hw)
            base = base or r
            de = 100 * (1 - r["energy_pj"] / base["energy_pj"])
            dc = 100 * (1 - r["cycles"] / base["cycles"])
            s = seed.get(bits, (0.0, 0.0))
            rows.append([bits, f"{r['energy_pj'] / 1e3:.1f}", f"-{de:.1f}%", f"-{s[0]:.1f}%", f"{r['cycles']:,}",
                         f"-{dc:.1f}%", f"-{s[1]:.1f}%", f"{r['accuracy']:.3f}"])
        print(f"\nseed 000: ADC resolution on the digits MLP (16-bit weights/inputs, {label} hardware)")
        print(table(rows, ["ADC bits", "energy nJ", "energy cut", "seed", "cycles", "cycle cut", "seed",
                           "accuracy"]))


def seed000_mnist(n: int) -> None:
    """Seed 000's ADC sweep on real data: LeNet-5 on the bundled MNIST test split (1,000 images: one image is
    0.1 %, against 0.28 % on digits), 16-bit weights and inputs, default hardware; the accuracy column is what
    the digits MLP's 360 images cannot resolve."""
    rows, base = [], None
    for bits in (8, 6, 4, 2, 1):
        r = run(LENET_MNIST, {"preset": "16bit", "default": {"adc_bits": bits}}, n)
        base = base or r
        de = 100 * (1 - r["energy_pj"] / base["energy_pj"])
        dc = 100 * (1 - r["cycles"] / base["cycles"])
        rows.append([bits, f"{r['energy_pj'] / 1e3:.1f}", f"-{de:.1f}%", f"{r['cycles']:,}", f"-{dc:.1f}%",
                     f"{r['accuracy']:.3f}", f"{r['reference_accuracy']:.3f}"])
    print(f"\nseed 000: ADC resolution on LeNet-5, real MNIST ({n} test images; 16-bit weights/inputs, default "
          f"hardware)")
    print(table(rows, ["ADC bits", "energy nJ", "energy cut", "cycles", "cycle cut", "accuracy",
                       "float accuracy"]))


def _xbar_dac(r: dict[str, Any]) -> float:
    return r["per_component"]["crossbar"]


def seed002(n: int) -> None:
    """SCE, CSD, ADC clipping and dynamic skipping (seed 002)."""
    from compiler.quant.adc_profile import profile_bitlines

    base = run(MLP, "16bit", n)
    sce = run(MLP, {"preset": "16bit", "default": {"w_enc": "sce"}}, n)
    both = run(MLP, {"preset": "16bit", "default": {"w_enc": "sce", "in_enc": "csd"}}, n)
    rows = [["SCE weights", f"{100 * (1 - _xbar_dac(sce) / _xbar_dac(base)):.1f}%", "27%"],
            ["SCE weights + CSD inputs", f"{100 * (1 - _xbar_dac(both) / _xbar_dac(base)):.1f}%", "39-44%"],
            ["  DAC energy with CSD", f"{100 * (1 - both['per_component']['dac'] / base['per_component']['dac']):.1f}%",
             "-"]]
    print("\nseed 002: crossbar energy reduction on the digits MLP (16-bit, conductance-charged crossbars)")
    print(table(rows, ["technique", "crossbar energy cut", "seed"]))

    x, _ = load_dataset("digits", "test")
    rows = []
    for enc in ("twos", "sce"):
        cm = compile_model(MLP, {"preset": "16bit", "default": {"w_enc": enc}}, mapping="naive", data=load_for_shape)
        loc = cm.program.inputs[0]
        q = {loc.name: nx.quantize(x[:n], loc.bits, loc.frac)}
        for p in profile_bitlines(cm.graph, cm.precision, q, cm.hw, cm.formats):
            rows.append([enc, p.layer, f"{p.coverage(5):.2%}", f"{p.coverage(6):.2%}", p.suggest(0.99, 10)])
    print("\nseed 002: bit-line coverage (seed: ~99 % within 6 bits of the 10-bit range; SCE saves 1 more bit)")
    print(table(rows, ["weights", "layer", "5-bit coverage", "6-bit coverage", "bits for 99%"]))

    skip = run(MLP, {"preset": "16bit", "default": {"skip": 14}}, n)
    conv_b = base["per_component"]["adc"]
    conv_s = skip["per_component"]["adc"]
    rows = [["conversions skipped", f"{100 * (1 - conv_s / conv_b):.1f}%", "50%"],
            ["accuracy change", f"{100 * (skip['accuracy'] - base['accuracy']):+.2f} pp", "< -0.32 pp"],
            ["cycles", f"{skip['cycles'] / base['cycles']:.2f}x of baseline", "-"]]
    print("\nseed 002: dynamic quantization at i + 2b <= 14, 16-bit inputs, 8 slices")
    print(table(rows, ["measure", "ours", "seed"]))

    combo = run(MLP, {"preset": "16bit", "default": {"w_enc": "sce", "in_enc": "csd", "adc_bits": 6, "skip": 14}}, n)
    rows = [["energy efficiency", f"{base['energy_pj'] / combo['energy_pj']:.2f}x", "3.7x"],
            ["throughput (1/cycles)", f"{base['cycles'] / combo['cycles']:.2f}x", "2x"],
            ["accuracy", f"{combo['accuracy']:.4f} vs {base['accuracy']:.4f}", "< 0.32 pp loss"]]
    print("\nseed 002: combined (SCE + CSD + 6-bit clipping ADC + skip 14) vs 16-bit full-resolution baseline")
    print(table(rows, ["measure", "ours", "seed"]))


def seed002_area_table(hw: Any) -> Any:
    """``hw`` with seed 002's TABLE I areas (65 nm) where the table has a row, PUMA's 32 nm figures scaled to 65 nm
    (area x (65/32)^2) elsewhere (docs/cost-model.md, "Area")."""
    from isa.area import scale_area

    c, up = hw.costs, (lambda um2: scale_area(um2, 32.0, 65.0))
    return hw.with_changes(costs={
        "area_node_nm": 65.0, "adc_um2": 4042.5, "adc_area_ref_bits": 10,  # ADC: 10-bit row (5-bit: 577.5)
        "dac_um2": (668.2 + 323.8) / 256,  # 256 DACs and 128 CSD encoders per MAC of 2 x 128 rows
        "sample_hold_um2": 5.0 / 128,  # 128 S&H per MAC
        "shift_add_um2": 3094.8 + 529.6,  # SA + output register and the sampling MUX, one per ADC
        "mvmu_out_regs_um2": 0.0,  # counted in "SA + output reg"
        "tile_mem_um2": 2 * 38445.2,  # 32 KB eDRAM
        "tile_ctrl_um2": 81509.4 + up(c.tile_ctrl_um2),  # six 1 KB SRAM buffers, PUMA's controllers
        **{k: up(getattr(c, k)) for k in ("xbar_um2", "mvmu_in_regs_um2", "data_regs_um2", "alu_um2",
                                          "core_ctrl_um2", "tile_bus_um2", "router_um2")}})


def seed002_area(n: int) -> None:
    """Seed 002's area rows: ADC area at 10 and 5 bits, and area (and energy) efficiency of the conventional
    10-bit design, 5-bit ADC with encoding, and dynamic quantization, on LeNet-MNIST (the seed's benchmark),
    under our default area table and under seed 002's TABLE I; the same runs, nothing tuned."""
    import dataclasses

    from isa.area import adc_area_um2, used_area
    from isa.hardware import DEFAULT

    s002 = seed002_area_table(DEFAULT)
    rows = [[label, f"{adc_area_um2(hw, 10):.1f}", f"{adc_area_um2(hw, 5):.1f}",
             f"-{100 * (1 - adc_area_um2(hw, 5) / adc_area_um2(hw, 10)):.1f}%"]
            for label, hw in (("ours (PUMA/ISAAC 8-bit, 32 nm; per-bit growth of TABLE I)", DEFAULT),
                              ("seed 002 TABLE I (65 nm)", s002))]
    print("\nseed 002: ADC area, um^2 (seed: 4042.5 -> 577.5, -86 %)")
    print(table(rows, ["table", "10 bits", "5 bits", "cut"]))

    model = ROOT / "models" / "lenet5_mnist.onnx"
    designs = {"conventional, 10-bit ADC": "16bit",
               "5-bit ADC + SCE/CSD": {"preset": "16bit", "default": {"w_enc": "sce", "in_enc": "csd",
                                                                      "adc_bits": 5}},
               "+ dynamic quantization": {"preset": "16bit", "default": {"w_enc": "sce", "in_enc": "csd",
                                                                         "adc_bits": 5, "skip": 14}}}
    seed = {"conventional, 10-bit ADC": ("308", "33445", "99.09"), "5-bit ADC + SCE/CSD": ("410", "56497", "99.05"),
            "+ dynamic quantization": ("2.7x: 832", "3.7x: 123747", "> 98.77")}
    rows, base = [], None
    for label, cfg in designs.items():
        cm = compile_model(model, cfg, mapping="naive", data=load_for_shape)
        x, y = load_for_shape("mnist", "test", tuple(cm.program.inputs[0].shape))
        r = runner.evaluate(cm, x[:n], y[:n], check=False)
        per_s = cm.hw.clock_ghz * 1e9 / r["pipeline_interval_cycles"]
        ours = used_area(cm.program).total_mm2
        theirs = used_area(dataclasses.replace(cm.program, hw=seed002_area_table(cm.hw))).total_mm2
        eff = (per_s / ours, per_s / theirs, r["energy_efficiency"])
        base = base or eff
        rows.append([label, f"{per_s:,.0f}", f"{ours:.3f}", f"{eff[0]:,.0f} ({eff[0] / base[0]:.2f}x)",
                     f"{theirs:.3f}", f"{eff[1]:,.0f} ({eff[1] / base[1]:.2f}x)", seed[label][0],
                     f"{eff[2]:,.0f} ({eff[2] / base[2]:.2f}x)", seed[label][1], f"{100 * r['accuracy']:.2f}",
                     seed[label][2]])
    print(f"\nseed 002: LeNet-MNIST area and energy efficiency (16-bit weights and inputs, naive mapping, {n} "
          f"test images; frames/s from the pipelined interval, area = what the program uses)")
    print(table(rows, ["design", "frames/s", "mm^2 ours", "frames/s/mm^2 ours", "mm^2 TABLE I",
                       "frames/s/mm^2 TABLE I", "seed", "frames/J", "seed", "accuracy %", "seed"]))


def main() -> None:
    """Run the selected experiments."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", nargs="+", default=["000", "001", "002"])
    ap.add_argument("--images", type=int, default=360)
    ap.add_argument("--mnist-images", type=int, default=1000, help="MNIST test images for the MNIST rows")
    a = ap.parse_args()
    np.set_printoptions(precision=4)
    if "000" in a.seeds:
        seed000(a.images)
        seed000_mnist(a.mnist_images)
        seed000_lstm(a.images)
    if "002" in a.seeds:
        seed002(a.images)
        seed002_area(a.images)
    if "001" in a.seeds:
        seed001(a.images)


def seed001(n: int) -> None:
    """Accuracy vs weight bits 2..8, uniform vs nonuniform (k searched per layer on the calib split), on the MLP
    and LeNet (seed 001: 4-bit nonuniform within 2-3 % of float; uniform falls off below 7 bits on VGG19)."""
    rows = []
    for model in (MLP, LENET):
        float_acc = None
        for bits in range(2, 9):
            uni = run(model, {"preset": "16bit", "default": {"w_bits": bits}}, n)
            non = run(model, {"preset": "16bit", "default": {"w_scheme": "nonuniform", "w_code_bits": bits,
                                                              "w_k": -1}}, n)
            float_acc = float_acc or uni["reference_accuracy"]
            ks = ",".join(f"{p.w_k:g}" for p in non["cm"].precision.values())
            grids = ",".join(str(p.w_bits) for p in non["cm"].precision.values())
            rows.append([model.stem, bits, f"{float_acc:.4f}", f"{uni['accuracy']:.4f}", f"{non['accuracy']:.4f}",
                         ks, grids])
    print("\nseed 001: accuracy vs weight bits (16-bit inputs, full ADC); seed: 4-bit nonuniform within 2-3 % of "
          "float")
    print(table(rows, ["model", "weight bits", "float", "uniform", "nonuniform", "k per layer",
                       "grid bits per layer"]))


if __name__ == "__main__":
    main()


# ---- seed 000, LSTM half (issue 16) ------------------------------------------------------------------------------
#: seed 000's LSTM on PUMA (24 tiles): ADC bits -> (energy uJ, cycles)
SEED_LSTM = {8: (65.1, 48589), 1: (17.8, 16293)}
LSTM_SHAPE = (1536, 1536, 1)  # hidden units, input features, time steps


def puma_lstm(hid: int, chans: int, steps: int, seed: int = 0) -> Any:
    """A batch-first LSTM classifier body (Transpose, LSTM, Transpose of Y_h) with PyTorch's initialisation
    (uniform in +-1/sqrt(H)), as `onnx.helper` builds it."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    k = 1 / np.sqrt(hid)
    inits = [numpy_helper.from_array(rng.uniform(-k, k, s).astype(np.float32), n)
             for n, s in (("W", (1, 4 * hid, chans)), ("R", (1, 4 * hid, hid)), ("B", (1, 8 * hid)))]
    nodes = [helper.make_node("Transpose", ["x"], ["x_t"], perm=[1, 0, 2]),
             helper.make_node("LSTM", ["x_t", "W", "R", "B"], ["", "Y_h"], hidden_size=hid, name="lstm"),
             helper.make_node("Transpose", ["Y_h"], ["h"], perm=[1, 0, 2])]
    graph = helper.make_graph(nodes, "puma_lstm", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                              ["N", steps, chans])],
                              [helper.make_tensor_value_info("h", TensorProto.FLOAT, ["N", 1, hid])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def seed000_lstm(n: int) -> None:
    """ADC resolution 8 -> 1 bits on an LSTM occupying 24 tiles of the ``puma`` preset, beside seed 000's LSTM
    (65.1 uJ and 48,589 cycles at 8 bits, 17.8 uJ and 16,293 cycles at 1 bit: -72.7 % and -66.5 %).

    Shape: H = 1536 hidden units on 1536 inputs, one time step. The stacked [x_t ; h_{t-1}] matrix is 3072 x 6144:
    24 row blocks x 48 column blocks (32 units' four gates each) = 1152 MVMUs = 24 tiles x 8 cores x 6 MVMUs, the
    seed's 24 tiles exactly; PUMA's LSTM benchmarks are word-language models of this width (hidden = embedding,
    1,500 to 2,048 units). Weights are random (PyTorch's initialisation), inputs uniform in [-1, 1] on two
    sequences: energy and cycles, not accuracy, are measured. 16-bit weights and inputs, naive mapping (every
    crossbar allocated, as the seed's accelerator). Never tuned: the numbers are what the cost tables give.

    Measured (machine loaded; energy and cycles do not depend on the load): 93.8 uJ and 15,473 cycles at 8 bits,
    57.5 uJ and 9,873 cycles at 1 bit: -38.7 % energy and -36.2 % cycles against the seed's -72.7 % and -66.5 %.
    Why the cuts are smaller: under the puma preset a crossbar read costs ``xbar_read_pj`` per physical array and
    input digit whatever the ADC does (16 input digits x 16 arrays per MVMU for 16-bit weights on 2-bit cells),
    53 % of the energy at 8 bits against the ADC's 36 % (87 % and 7 % at 1 bit), so the ADC alone can cut at most
    about a third; the seed's figures leave the ADC most of the energy. Cycles: only the MVM's conversion time
    scales with the ADC's bits; the per-step loads of 3,072 input rows, the hand-over of 23 row blocks' partial
    sums to each column block's owner, the gates and the state sent to 23 other tiles do not. The seed's 8-bit
    latency (48,589 cycles) is three times ours for one step; its step count and network model are not given."""
    hid, chans, steps = LSTM_SHAPE
    model = puma_lstm(hid, chans, steps)
    x = np.random.default_rng(1).uniform(-1, 1, (2, steps, chans)).astype(np.float32)
    rows, base = [], None
    for bits in (8, 6, 4, 2, 1):
        cm = compile_model(model, {"preset": "16bit", "default": {"adc_bits": bits}}, hw="puma", mapping="naive",
                           calib={"x": x})
        st = runner.run(cm, {"x": x}).stats
        base = base or st
        de = 100 * (1 - st.energy_pj / base.energy_pj)
        dc = 100 * (1 - st.cycles / base.cycles)
        se, sc = SEED_LSTM.get(bits, (None, None))
        tiles = len({b.tile for b in cm.mapping.layers["lstm_h"].blocks})
        rows.append([bits, tiles, f"{st.energy_pj / 1e6:.1f}", f"-{de:.1f}%", f"{se} uJ" if se else "-",
                     f"{st.cycles:,}", f"-{dc:.1f}%", f"{sc:,}" if sc else "-"])
    print(f"\nseed 000: ADC resolution on a {hid}-unit LSTM over {chans} inputs, {steps} step(s) (16-bit, puma "
          f"hardware; seed: -72.7 % energy, -66.5 % cycles from 8 to 1 bits)")
    print(table(rows, ["ADC bits", "tiles", "energy uJ", "energy cut", "seed", "cycles", "cycle cut", "seed"]))
    print("the ADC's share of the energy bounds the cut: the puma preset charges every crossbar read per array and "
          "input digit (seed000_lstm's docstring)")
