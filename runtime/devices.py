"""Non-ideal devices (opt-in; docs/devices.md): a seeded model of the programmed conductances and of each read,
and the MVM that converts the perturbed bit-line currents with the ADC's resolution and clipping.

The bit-exact MVM (`runtime.handlers`) stays the reference; this one replaces it only when a run is given a
`DeviceModel`. Conductances are in units of the on-state conductance G_on; a cell at level l of L = 2^cell_bits
- 1 is programmed to ``G_off + l (1 - G_off) / L`` (``G_off = 1 / on_off_ratio``, 0 when the ratio is 0,
meaning ideal). One MVMU's arrays are sampled once per run and trial:

1. programming: ``G = G_t + sigma(G_t) N(0, 1)``, clamped at 0, with ``sigma = prog_sigma x G_t`` (relative),
   ``prog_sigma`` (absolute, in G_on) or ``sum_i prog_poly[i] G_t^i`` (a fitted polynomial);
2. drift: ``G(t) = G (t / t0)^-nu``, nu ~ N(drift_nu, drift_nu_std) per cell (at least 0);
3. stuck-at faults: a cell is stuck at G_on with probability ``stuck_on``, at G_off with ``stuck_off``.

Each read of a digit step adds independent Gaussian noise to every driven cell (``read_sigma`` x G, or x G_on
with ``read_mode`` "absolute"), summed on the bit line exactly as a sum of Gaussians. A bit line's value in ADC
levels is ``(I+ - I-) / step - ref`` with ``step = (1 - G_off) / L`` and the reference ``ref`` subtracting the
nominal G_off of every placed cell on the driven rows; the ADC rounds it to the nearest integer and clips it
to its signed resolution; skipped conversions read 0; shift-and-add is exact. With every non-ideality at zero
the value is exactly the cell-level difference: the outputs equal the exact path's bit for bit.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from isa import HardwareConfig, MvmuImage, Program
from isa import numerics as nx
from isa import ops
from isa.errors import ConfigError, kind_text
from isa.hardware import FieldSpec

from .state import I64, MvmuKernel


@dataclass(frozen=True)
class DeviceModel:
    """The non-idealities of the crossbar cells (module docstring); every default is ideal."""

    name: str = "custom"
    prog_sigma: float = 0.0
    prog_mode: str = "relative"
    prog_poly: tuple[float, ...] = ()
    stuck_on: float = 0.0
    stuck_off: float = 0.0
    read_sigma: float = 0.0
    read_mode: str = "relative"
    drift_nu: float = 0.0
    drift_nu_std: float = 0.0
    drift_t: float = 1.0
    drift_t0: float = 1.0
    on_off_ratio: float = 0.0
    seed: int = 0
    source: str = ""

    def __post_init__(self) -> None:
        for name, spec in DEVICE_FIELDS.items():
            problem = spec.problem(getattr(self, name))
            if problem:
                raise ConfigError(f"devices: field '{name}': {problem}")
        if self.stuck_on + self.stuck_off > 1:
            raise ConfigError(f"devices: fields 'stuck_on', 'stuck_off': rates sum to "
                              f"{self.stuck_on + self.stuck_off:g}, more than 1")

    @property
    def g_off(self) -> float:
        """Off-state conductance in units of G_on."""
        return 1.0 / self.on_off_ratio if self.on_off_ratio else 0.0

    @property
    def ideal(self) -> bool:
        """Whether no non-ideality is set (a finite on/off ratio alone changes nothing: the reference cancels
        it)."""
        return not (self.prog_sigma or self.prog_poly or self.stuck_on or self.stuck_off or self.read_sigma
                    or self.drift_nu or self.drift_nu_std)

    def with_changes(self, **changes: Any) -> "DeviceModel":
        """A copy with some fields replaced (checked)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return dataclasses.asdict(self) | {"prog_poly": list(self.prog_poly)}


_RATE = FieldSpec("float", 0, 1, why="a probability")
_SIGMA = FieldSpec("float", 0, 10, why="a standard deviation in units of G_on or of G")

#: Every `DeviceModel` field with its type and range.
DEVICE_FIELDS: dict[str, FieldSpec] = {
    "name": FieldSpec("str"), "source": FieldSpec("str"),
    "prog_sigma": _SIGMA, "prog_mode": FieldSpec("choice", choices=("relative", "absolute")),
    "prog_poly": FieldSpec("floats", -100, 100, why="coefficients in G_on"),
    "stuck_on": _RATE, "stuck_off": _RATE,
    "read_sigma": _SIGMA, "read_mode": FieldSpec("choice", choices=("relative", "absolute")),
    "drift_nu": FieldSpec("float", 0, 1, why="drift exponent"),
    "drift_nu_std": FieldSpec("float", 0, 1, why="drift exponent spread"),
    "drift_t": FieldSpec("float", 1e-9, 1e12, why="seconds after programming"),
    "drift_t0": FieldSpec("float", 1e-9, 1e12, why="seconds: the reference read time"),
    "on_off_ratio": FieldSpec("float", 0, 1e12, why="G_on / G_off; 0: ideal (G_off = 0)"),
    "seed": FieldSpec("int", 0, 2**63 - 1),
}

IDEAL = DeviceModel(name="ideal", source="every non-ideality at zero: reproduces the exact outputs")

#: Named presets from published device data (docs/devices.md gives each one's derivation).
PRESETS: dict[str, DeviceModel] = {
    "ideal": IDEAL,
    # Wan et al., Nature 608 (2022), NeuRRAM: programming error vs conductance as fitted by aihwkit's
    # ReRamWan2022NoiseModel (1 s after programming, uS at g_max = 40 uS, divided by 40), with the ~1 % read
    # noise aihwkit recommends beside it; no power-law drift (ReRAM); G_min = 0 as aihwkit's converter.
    "reram-wan2022": DeviceModel(
        name="reram-wan2022", prog_poly=(0.348 / 40, 16.030 / 40, -43.853 / 40, 45.393 / 40, -16.815 / 40),
        read_sigma=0.01, read_mode="absolute",
        source="Wan et al., Nature 2022 (NeuRRAM), via aihwkit ReRamWan2022NoiseModel"),
    # Chen et al., IEEE Trans. Computers 64(1) (2015): stuck-at faults measured on a 4 Mb HfOx RRAM chip,
    # 1.75 % stuck-at-0 (HRS, off) and 9.04 % stuck-at-1 (LRS, on); no analog variation.
    "reram-saf-chen2015": DeviceModel(
        name="reram-saf-chen2015", stuck_off=0.0175, stuck_on=0.0904,
        source="Chen et al., IEEE TC 2015, RRAM defect modelling (HfOx)"),
    # Nandakumar et al. / Joshi et al., Nat. Commun. 11 (2020): PCM programming noise and drift as aihwkit's
    # PCMLikeNoiseModel fits them (uS at g_max = 25 uS, divided by 25; nu at the top level 0.049 with spread
    # 0.008 at the low end of its clamp), read 1 hour after the t0 = 20 s reference.
    "pcm-joshi2020": DeviceModel(
        name="pcm-joshi2020", prog_poly=(0.26348 / 25, 1.9650 / 25, -1.1731 / 25), drift_nu=0.049,
        drift_nu_std=0.008, drift_t=3600.0 + 20.0, drift_t0=20.0,
        source="Joshi et al., Nat. Commun. 2020 (PCM), via aihwkit PCMLikeNoiseModel"),
}


def device_model(d: Mapping[str, Any], source: str = "devices") -> DeviceModel:
    """A `DeviceModel` from a dict (optionally ``"preset": NAME`` to start from); a `ConfigError` names the
    first bad or unknown field."""
    if not isinstance(d, Mapping):
        raise ConfigError(f"{source}: a device model is a JSON object, got {kind_text(d)}")
    d = dict(d)
    preset = d.pop("preset", "ideal")
    if not isinstance(preset, str) or preset not in PRESETS:
        raise ConfigError(f"{source}: field 'preset': must be one of {', '.join(map(repr, PRESETS))}, got "
                          f"{preset!r}")
    unknown = [k for k in d if k not in DEVICE_FIELDS]
    if unknown:
        raise ConfigError(f"{source}: unknown field '{unknown[0]}'; fields: preset, {', '.join(DEVICE_FIELDS)}")
    for name, value in d.items():
        problem = DEVICE_FIELDS[name].problem(value)
        if problem:
            raise ConfigError(f"{source}: field '{name}': {problem}")
    if "prog_poly" in d:
        d["prog_poly"] = tuple(d["prog_poly"])
    base = PRESETS[preset]
    if d and "name" not in d:
        d["name"] = f"{base.name}, modified" if preset != "ideal" else "custom"
    if d and "source" not in d:
        d["source"] = f"preset {preset} with {', '.join(sorted(k for k in d if k != 'name'))} changed"
    try:
        return dataclasses.replace(base, **d)
    except ConfigError as e:
        raise ConfigError(str(e).replace("devices:", f"{source}:", 1)) from None


def load_devices(spec: str | Path) -> DeviceModel:
    """A preset name or a JSON file of `DeviceModel` fields (optionally ``"preset": NAME``)."""
    if str(spec) in PRESETS:
        return PRESETS[str(spec)]
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(f"devices '{spec}': neither a preset ({', '.join(PRESETS)}) nor an existing file")
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the device file ({e.__class__.__name__}: {e})") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None
    return device_model(doc, str(path))


# ---- programmed arrays ---------------------------------------------------------------------------------------
@dataclass
class NoisyMvmu:
    """One MVMU's sampled arrays: ``diff`` (S*C, R) the bit-line value per unit digit in ADC levels (row
    s*C + c, as `MvmuKernel.diff`), ``read_var`` (S*C, R) the read-noise variance per unit digit (None: no read
    noise), its slice ``scale`` and the generator of its read noise."""

    diff: np.ndarray
    read_var: np.ndarray | None
    scale: np.ndarray
    rows: int
    cols: int
    slice_ids: tuple[int, ...]
    cell_bits: int
    rng: np.random.Generator = field(repr=False)

    def mvm(self, x: np.ndarray, i: ops.Mvm, sig: np.ndarray) -> np.ndarray:
        """The MVM of ``x`` (R, B) wrapped inputs on these arrays: digits, perturbed bit-line values, ADC
        rounding and clipping, skipped conversions (rule SKIP), exact shift-and-add -> (C, B) int64."""
        ibits = i.ibits
        skips = nx.skipped(ibits, self.slice_ids, self.cell_bits, i.skip)  # (ibits, slices)
        keep = ~skips if skips.any() else None
        r, b = x.shape
        digits = nx.input_digits(x, ibits, "csd" if i.enc else "twos")[0].transpose(1, 0, 2)  # (R, ibits, B)
        d = digits.reshape(r, ibits * b).astype(np.float64)
        v = self.diff @ d
        if self.read_var is not None:
            v += np.sqrt(self.read_var @ (d * d)) * self.rng.standard_normal(v.shape)
        q = np.clip(np.rint(v), nx.qmin(i.adc), nx.qmax(i.adc)).astype(I64)  # numerics.adc_convert
        slices = len(self.scale)
        q = q.reshape(slices, self.cols, ibits, b)
        if keep is not None:
            q = q * keep.T[:, None, :, None].astype(I64)
        s = np.einsum("scjb,s->cjb", q, self.scale.astype(I64))
        out: np.ndarray = np.einsum("cjb,j->cb", s, sig)
        return out


def _cell_sigma(model: DeviceModel, g: np.ndarray) -> np.ndarray:
    """Programming standard deviation (in G_on) of cells with target conductance ``g``."""
    sig: np.ndarray
    if model.prog_poly:
        sig = np.zeros_like(g)
        for k, c in enumerate(model.prog_poly):
            sig += c * g ** k
        sig = np.maximum(sig, 0.0)
        return sig
    sig = model.prog_sigma * (g if model.prog_mode == "relative" else np.ones_like(g))
    return sig


def program_arrays(model: DeviceModel, hw: HardwareConfig, img: MvmuImage, kern: MvmuKernel,
                   rng: np.random.Generator) -> NoisyMvmu:
    """Sample the programmed conductances of one MVMU image (the slices its kernel reads) with ``rng``."""
    pos, neg = nx.weight_slices(np.asarray(img.weights, dtype=I64), img.weight_bits, hw.cell_bits, img.encoding)
    ids = list(kern.slice_ids)
    levels = np.stack([pos[ids], neg[ids]], axis=1).astype(np.float64)  # (S, 2, R, C)
    placed = np.ones_like(levels, dtype=bool)
    if img.layout is not None:  # packed: only placed bit lines have cells
        lay = np.asarray(img.layout)[ids]  # (S, 2, C, 3)
        placed = np.broadcast_to((lay[..., 0] >= 0)[:, :, None, :], levels.shape)
    top = float((1 << hw.cell_bits) - 1)
    g_off = model.g_off
    step = (1.0 - g_off) / top
    g = np.where(placed, g_off + levels * step, 0.0)
    if model.prog_sigma or model.prog_poly:
        g = np.maximum(g + _cell_sigma(model, g) * rng.standard_normal(g.shape), 0.0)
    if model.drift_nu or model.drift_nu_std:
        nu = np.abs(model.drift_nu + model.drift_nu_std * rng.standard_normal(g.shape))
        g = g * (model.drift_t / model.drift_t0) ** -nu
    if model.stuck_on or model.stuck_off:
        u = rng.random(g.shape)
        g = np.where(u < model.stuck_on, 1.0, np.where(u < model.stuck_on + model.stuck_off, g_off, g))
    g = np.where(placed, g, 0.0)
    ref = np.where(placed, g_off, 0.0)
    values = ((g[:, 0] - ref[:, 0]) - (g[:, 1] - ref[:, 1])) / step  # (S, R, C) in ADC levels
    s, r, c = values.shape
    diff = np.ascontiguousarray(values.transpose(0, 2, 1).reshape(s * c, r))
    read_var = None
    if model.read_sigma:
        sd = model.read_sigma * (g if model.read_mode == "relative" else placed.astype(np.float64)) / step
        var = (sd[:, 0] ** 2 + sd[:, 1] ** 2).transpose(0, 2, 1).reshape(s * c, r)
        read_var = np.ascontiguousarray(var)
    scale = np.array([1 << (hw.cell_bits * k) for k in ids], dtype=I64)
    return NoisyMvmu(diff, read_var, scale, r, c, tuple(ids), hw.cell_bits, rng)


def fire_devices(arrays: dict[int, NoisyMvmu], stack: Any, x: np.ndarray, i: ops.Mvm,
                 sig: np.ndarray) -> np.ndarray:
    """The mvm hook of the runtime (`runtime.handlers`): the stacked MVMUs of ``stack`` (`runtime.mvm.MvmStack`:
    its ``units``, ``rows`` and ``cols``) fired on their sampled ``arrays`` with wrapped inputs ``x`` (K*R, B)
    -> (K, C, B) int64, the shape of `MvmStack.fire`."""
    k, b = len(stack.units), x.shape[1]
    xs = x.reshape(k, stack.rows, b)
    out = np.zeros((k, stack.cols, b), dtype=I64)
    for j, unit in enumerate(stack.units):
        m = arrays[unit]
        out[j, :m.cols] = m.mvm(xs[j, :m.rows], i, sig)
    return out


def program_devices(model: DeviceModel, program: Program, trial: int = 0
                    ) -> dict[tuple[int, int], dict[int, NoisyMvmu]]:
    """Every programmed, non-idle MVMU of ``program`` sampled under ``model`` for trial ``trial``, by (tile,
    core) and MVMU index. Each MVMU draws from its own stream, seeded by (seed, trial, tile, core, mvmu), so a
    result does not depend on the order MVMUs are sampled or fired in."""
    out: dict[tuple[int, int], dict[int, NoisyMvmu]] = {}
    for img in program.mvmus:
        kern = MvmuKernel.from_image(img, program.hw)
        if kern.idle:
            continue
        rng = np.random.default_rng([model.seed, trial, img.tile, img.core, img.mvmu])
        out.setdefault((img.tile, img.core), {})[img.mvmu] = program_arrays(model, program.hw, img, kern, rng)
    return out
