"""Run inputs and calibration arrays that are not finite real numbers are rejected, naming the tensor and the
first bad index (issue 12 item 3, run side)."""

from __future__ import annotations

import numpy as np
import pytest

from compiler import compile_model, runner
from compiler.cli import main
from compiler.inputs import real_array
from isa.errors import XbarcError

from conftest import MLP


@pytest.fixture(scope="module")
def x(mlp16, digits_test):
    return digits_test[0][:4].reshape((4,) + tuple(mlp16.program.inputs[0].shape)).astype(np.float64)


def _poke(x: np.ndarray, index: tuple[int, ...], value: complex) -> np.ndarray:
    y = x.astype(np.complex128 if isinstance(value, complex) else np.float64)
    y[index] = value
    return y


BAD = [  # (value poked at index (2, 17), the message's description of it)
    (np.nan, r"element \[2, 17\] is nan; inputs must be finite"),
    (np.inf, r"element \[2, 17\] is inf; inputs must be finite"),
    (-np.inf, r"element \[2, 17\] is -inf; inputs must be finite"),
    (0.5 + 0.25j, r"element \[2, 17\] is complex \(\(0\.5\+0\.25j\)\); inputs must be real numbers"),
]


@pytest.mark.parametrize("value,message", BAD)
def test_run_rejects_non_finite_or_complex_input(mlp16, x, value, message):
    name = mlp16.program.inputs[0].name
    with pytest.raises(XbarcError, match=f"^input '{name}': {message}$"):
        runner.run(mlp16, {name: _poke(x, (2, 17), value)})


@pytest.mark.parametrize("value,message", BAD)
def test_calibration_rejects_non_finite_or_complex_arrays(mlp16, x, value, message):
    name = mlp16.program.inputs[0].name
    with pytest.raises(XbarcError, match=f"^calibration input '{name}': {message}$"):
        compile_model(MLP, "16bit", calib={name: _poke(x, (2, 17), value)})


def test_complex_with_zero_imaginary_part_is_real(mlp16, x):
    name = mlp16.program.inputs[0].name
    a, b = runner.run(mlp16, {name: x}), runner.run(mlp16, {name: x + 0j})
    assert np.array_equal(a.device_int[next(iter(a.device_int))], b.device_int[next(iter(b.device_int))])


def test_index_of_a_higher_rank_tensor_and_non_numeric_values():
    arr = np.zeros((2, 3, 4, 5))
    arr[1, 2, 0, 3] = np.nan
    with pytest.raises(XbarcError, match=r"^t: element \[1, 2, 0, 3\] is nan"):
        real_array(arr, "t")
    for bad in (np.array(["a", "b"]), np.array([1, None], dtype=object)):
        with pytest.raises(XbarcError, match="are not real numbers"):
            real_array(bad, "t")
    with pytest.raises(XbarcError, match="not a numeric array"):
        real_array([[1, 2], [3]], "t")


def test_names_and_shapes_are_checked(mlp16, x):
    name = mlp16.program.inputs[0].name
    with pytest.raises(XbarcError, match=rf"inputs: missing \['{name}'\], unexpected \['other'\]"):
        runner.run(mlp16, {"other": x})
    # the frontend sees the calibration shape first (it may fix dynamic dims from it) and names both shapes
    with pytest.raises(XbarcError, match=rf"input '{name}': given shape \(4, 10\) differs from the model's static dim"):
        compile_model(MLP, "16bit", calib={name: x.reshape(len(x), -1)[:, :10]})
    with pytest.raises(XbarcError, match="calibration: expected a data set name or a dict"):
        compile_model(MLP, "16bit", calib=[x])


def test_cli_run_inputs_names_the_bad_element(mlp16, x, tmp_path, capsys):
    out = tmp_path / "mlp"
    mlp16.save(out)
    name = mlp16.program.inputs[0].name
    np.savez(tmp_path / "in.npz", **{name: _poke(x, (3, 0), np.nan)})
    assert main(["run", str(out), "--inputs", str(tmp_path / "in.npz")]) != 0
    err = capsys.readouterr().err
    assert f"input '{name}': element [3, 0] is nan" in err and "Traceback" not in err


def test_machine_checks_the_range_before_casting_unsigned_words(mlp16):
    """uint64 words above the int64 range would wrap to small negative values in the cast."""
    from runtime import Machine

    loc = mlp16.program.inputs[0]
    words = np.zeros((2, loc.length), dtype=np.uint64)
    words[1, 3] = np.uint64(2**64 - 1)
    with pytest.raises(XbarcError, match=f"input '{loc.name}': values outside the {loc.bits}-bit range"):
        Machine(mlp16.program).run({loc.name: words})
