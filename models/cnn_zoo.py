"""ImageNet-topology CNNs with random weights, built in code (for compile-scale benchmarks; no .onnx is committed).

``resnet18()``, ``resnet50()`` and ``vgg16()`` return an ``onnx.ModelProto`` with the torchvision topology:
input ``input`` float32 [N, 3, 224, 224], output ``logits`` float32 [N, 1000], opset 13, ir_version 8.

* ResNet: Conv 7x7/2 pad 3 (no bias) -> BatchNormalization -> Relu -> MaxPool 3x3/2 pad 1, four stages of
  BasicBlocks (ResNet-18: [2, 2, 2, 2]) or Bottlenecks (ResNet-50: [3, 4, 6, 3], expansion 4, stride on the 3x3
  conv as in torchvision's "ResNet v1.5"), a 1x1 Conv + BN downsample on the skip path when the shape
  changes, Add, Relu; then GlobalAveragePool -> Flatten -> Gemm 1000. Convolutions have no bias (BN follows).
* VGG-16: 13 Conv 3x3 pad 1 (with bias) + Relu with 5 MaxPool 2x2/2, Flatten, Gemm 4096 -> Relu -> Gemm 4096 ->
  Relu -> Gemm 1000. torchvision's AdaptiveAvgPool2d((7, 7)) is the identity at 224x224 and its Dropouts are the
  identity at inference, so they are left out.

Node names follow the torchvision module names (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer2.0.downsample.0``,
``features.0``, ``classifier.0``, ...). Weights are He-normal from ``numpy.random.default_rng(seed)`` generated
directly in float32; BN parameters are mildly random (scale ~1, shift/mean ~0, var ~1; scale ~0.25 on the last BN of
each residual branch, in the spirit of torchvision's ``zero_init_residual``) so the activations of the random
networks stay numerically tame. The same arguments always give the same bytes.

Scaling arguments for quick tests: ``resolution`` (input height = width; a multiple of 32), ``width`` (channel
multiplier, also applied to VGG's 4096-wide hidden layers), ``num_classes`` and ``batch`` (an int or a symbolic
name). At a resolution other than 224 VGG's first Gemm takes 512*width * (resolution/32)^2 inputs.
Parameter counts at full size: ResNet-18 11.7 M, ResNet-50 25.6 M, VGG-16 138.4 M (553 MB of float32).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

OPSET = 13
BN_EPS = 1e-5
RESIDUAL_GAMMA = 0.25  # BN scale at the end of a residual branch (keeps random activations from doubling per block)


class _GraphBuilder:
    """Appends nodes and float32 initializers; every tensor gets a fresh name derived from its node's name."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.proto = onnx.ModelProto()  # initializers go straight into it: one copy of each weight in memory

    def _tensor(self, name: str, shape: tuple[int, ...], scale: float, offset: float = 0.0) -> str:
        """A float32 initializer offset + scale * standard normal, generated without float64 copies."""
        a = self.rng.standard_normal(shape, dtype=np.float32)
        a *= np.float32(scale)
        if offset:
            a += np.float32(offset)
        t = self.proto.graph.initializer.add()
        t.name, t.data_type = name, TensorProto.FLOAT
        t.dims.extend(shape)
        t.raw_data = a.tobytes()
        return name

    def _node(self, op: str, name: str, inputs: list[str], **attrs: object) -> str:
        self.nodes.append(helper.make_node(op, inputs, [f"{name}_out"], name=name, **attrs))
        return f"{name}_out"

    def conv(self, name: str, x: str, cin: int, cout: int, k: int, stride: int = 1, pad: int = 0,
             bias: bool = False) -> str:
        inputs = [x, self._tensor(f"{name}.weight", (cout, cin, k, k), np.sqrt(2.0 / (cin * k * k)))]
        if bias:
            inputs.append(self._tensor(f"{name}.bias", (cout,), 0.01))
        return self._node("Conv", name, inputs, kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4)

    def bn(self, name: str, x: str, c: int, gamma: float = 1.0) -> str:
        inputs = [x, self._tensor(f"{name}.weight", (c,), 0.1 * gamma, gamma), self._tensor(f"{name}.bias", (c,), 0.1),
                  self._tensor(f"{name}.running_mean", (c,), 0.1)]
        var = self.rng.uniform(0.5, 1.5, c).astype(np.float32)
        self.proto.graph.initializer.add().CopyFrom(onnx.numpy_helper.from_array(var, f"{name}.running_var"))
        return self._node("BatchNormalization", name, inputs + [f"{name}.running_var"], epsilon=BN_EPS)

    def relu(self, name: str, x: str) -> str:
        return self._node("Relu", name, [x])

    def maxpool(self, name: str, x: str, k: int, stride: int, pad: int = 0) -> str:
        return self._node("MaxPool", name, [x], kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4)

    def add(self, name: str, a: str, b: str) -> str:
        return self._node("Add", name, [a, b])

    def gemm(self, name: str, x: str, fan_in: int, fan_out: int, output: str | None = None) -> str:
        w = self._tensor(f"{name}.weight", (fan_out, fan_in), np.sqrt(2.0 / fan_in))
        b = self._tensor(f"{name}.bias", (fan_out,), 0.01)
        if output is None:
            return self._node("Gemm", name, [x, w, b], transB=1)
        self.nodes.append(helper.make_node("Gemm", [x, w, b], [output], name=name, transB=1))
        return output

    def model(self, graph_name: str, batch: int | str, resolution: int, num_classes: int) -> onnx.ModelProto:
        """The finished model (built in place: ``helper.make_graph``/``make_model`` would copy every weight)."""
        model = self.proto
        model.ir_version = 8
        model.producer_name = "xbarc"
        model.opset_import.add().CopyFrom(helper.make_opsetid("", OPSET))
        model.graph.name = graph_name
        model.graph.node.extend(self.nodes)
        model.graph.input.append(
            helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, resolution, resolution]))
        model.graph.output.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, num_classes]))
        return model


def _check_resolution(resolution: int) -> None:
    if resolution < 32 or resolution % 32:
        raise ValueError(f"resolution must be a positive multiple of 32, got {resolution}")


def _ch(c: int, width: float) -> int:
    return max(1, int(round(c * width)))


def _resnet(name: str, bottleneck: bool, layers: tuple[int, ...], seed: int, resolution: int, width: float,
            num_classes: int, batch: int | str) -> onnx.ModelProto:
    _check_resolution(resolution)
    gb = _GraphBuilder(seed)
    expansion = 4 if bottleneck else 1
    cin = _ch(64, width)
    h = gb.relu("relu", gb.bn("bn1", gb.conv("conv1", "input", 3, cin, 7, 2, 3), cin))
    h = gb.maxpool("maxpool", h, 3, 2, 1)
    for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers), start=1):
        planes = _ch(planes, width)
        for i in range(blocks):
            stride = 2 if stage > 1 and i == 0 else 1
            p = f"layer{stage}.{i}"
            cout = planes * expansion
            if bottleneck:
                t = gb.relu(f"{p}.relu1", gb.bn(f"{p}.bn1", gb.conv(f"{p}.conv1", h, cin, planes, 1), planes))
                t = gb.relu(f"{p}.relu2", gb.bn(f"{p}.bn2", gb.conv(f"{p}.conv2", t, planes, planes, 3, stride, 1),
                                                planes))
                t = gb.bn(f"{p}.bn3", gb.conv(f"{p}.conv3", t, planes, cout, 1), cout, RESIDUAL_GAMMA)
            else:
                t = gb.relu(f"{p}.relu1", gb.bn(f"{p}.bn1", gb.conv(f"{p}.conv1", h, cin, planes, 3, stride, 1),
                                                planes))
                t = gb.bn(f"{p}.bn2", gb.conv(f"{p}.conv2", t, planes, planes, 3, 1, 1), planes, RESIDUAL_GAMMA)
            skip = h
            if stride != 1 or cin != cout:
                skip = gb.bn(f"{p}.downsample.1", gb.conv(f"{p}.downsample.0", h, cin, cout, 1, stride), cout)
            h = gb.relu(f"{p}.relu", gb.add(f"{p}.add", t, skip))
            cin = cout
    h = gb._node("GlobalAveragePool", "avgpool", [h])
    h = gb._node("Flatten", "flatten", [h], axis=1)
    gb.gemm("fc", h, cin, num_classes, output="logits")
    return gb.model(name, batch, resolution, num_classes)


def resnet18(seed: int = 0, resolution: int = 224, width: float = 1.0, num_classes: int = 1000,
             batch: int | str = "N") -> onnx.ModelProto:
    """torchvision ResNet-18 topology with random weights (11.7 M parameters at full size)."""
    return _resnet("resnet18", False, (2, 2, 2, 2), seed, resolution, width, num_classes, batch)


def resnet50(seed: int = 0, resolution: int = 224, width: float = 1.0, num_classes: int = 1000,
             batch: int | str = "N") -> onnx.ModelProto:
    """torchvision ResNet-50 (v1.5, stride on the 3x3) topology with random weights (25.6 M parameters)."""
    return _resnet("resnet50", True, (3, 4, 6, 3), seed, resolution, width, num_classes, batch)


VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def vgg16(seed: int = 0, resolution: int = 224, width: float = 1.0, num_classes: int = 1000,
          batch: int | str = "N") -> onnx.ModelProto:
    """torchvision VGG-16 (no BN) topology with random weights (138.4 M parameters, ~553 MB at full size)."""
    _check_resolution(resolution)
    gb = _GraphBuilder(seed)
    h, cin = "input", 3
    for v in VGG16_CFG:  # one node per torchvision module, so node names are the features.<index> names
        if v == "M":
            h = gb.maxpool(f"features.{len(gb.nodes)}", h, 2, 2)
        else:
            cout = _ch(v, width)
            h = gb.conv(f"features.{len(gb.nodes)}", h, cin, cout, 3, 1, 1, bias=True)
            h = gb.relu(f"features.{len(gb.nodes)}", h)
            cin = cout
    h = gb._node("Flatten", "flatten", [h], axis=1)
    hidden = _ch(4096, width)
    side = resolution // 32
    h = gb.relu("classifier.1", gb.gemm("classifier.0", h, cin * side * side, hidden))
    h = gb.relu("classifier.4", gb.gemm("classifier.3", h, hidden, hidden))
    gb.gemm("classifier.6", h, hidden, num_classes, output="logits")
    return gb.model("vgg16", batch, resolution, num_classes)


ZOO = {"resnet18": resnet18, "resnet50": resnet50, "vgg16": vgg16}


def parameter_count(model: onnx.ModelProto) -> int:
    """Number of scalar parameters (initializer elements)."""
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer)
