#!/usr/bin/env python3
"""Make the project's own quantized ONNX models (random weights, real quantization).

Deterministic: fixed seeds, fixed calibration data, single-threaded calibration.
Running it twice writes byte-identical files.

Writes:
  tests/golden/models/resnet8_qdq.onnx   ResNet-8 (CIFAR-10 shape), QDQ
  tests/golden/models/resnet8_qop.onnx   ResNet-8, QOperator (QLinearConv, QLinearAdd, ...)
  tests/golden/models/dscnn_qdq.onnx     DS-CNN (KWS shape), QDQ
  tests/golden/models/dscnn_qop.onnx     DS-CNN, QOperator
  examples/example_int8.onnx             the README's example: conv, depthwise, pointwise,
                                         global average pool, dense on 1x3x32x32, QDQ
  tests/golden/models/intdialect_kws.onnx
  tests/golden/models/intdialect_vww.onnx
                                         integer ONNX dialect (the spelling of the MATCH test
                                         models, opset 10), built from scratch: DS-CNN (KWS) and
                                         small MobileNet (VWW) shapes, own random uint8 weights,
                                         per-channel requantization constants calibrated on
                                         random inputs so that no layer saturates
  tests/golden/models/intdialect_ternary.onnx
                                         integer dialect with int8 activations and ternary
                                         weights {-1, 0, +1} (DIANA's analog core): input
                                         clipped to 7 bits [-64, 63], four 3x3 convs and a
                                         dense layer, every activation that feeds one inside
                                         [-64, 63]; see intdialect_ternary

Float models are built directly with onnx.helper (He-initialised random weights, small random
biases: the network's BatchNorms are taken as already folded into the convolutions) and
quantized by onnxruntime's quantize_static: per-channel int8 weights, int8 activations,
MinMax calibration on CALIB_SAMPLES random inputs uniform in CALIB_RANGE.

Usage (from the repository root):  python tools/make_models.py
"""

import logging
import os
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)

sys.dont_write_bytecode = True  # no tools/__pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from intdialect import Int64Evaluator, attrs_of, recalibrate  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPSET = 13
CALIB_SAMPLES = 32
# Inputs (calibration and golden) are uniform in this range; make_golden.py imports it.
CALIB_RANGE = (-1.0, 1.0)


class Builder:
    """Tiny helper around onnx.helper for NCHW float graphs with random weights."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes = []
        self.inits = []
        self.n = 0

    def name(self, prefix):
        self.n += 1
        return f"{prefix}_{self.n}"

    def const(self, prefix, array):
        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(array.astype(np.float32), name))
        return name

    def conv(self, x, cin, cout, kernel, stride=1, pads=None, group=1, relu=True):
        kh, kw = kernel
        if pads is None:
            pads = [kh // 2, kw // 2, kh // 2, kw // 2]
        fan_in = (cin // group) * kh * kw
        w = self.rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(cout, cin // group, kh, kw))
        b = self.rng.normal(0.0, 0.05, size=(cout,))
        wn, bn = self.const("w", w), self.const("b", b)
        y = self.name("conv")
        self.nodes.append(
            helper.make_node(
                "Conv", [x, wn, bn], [y], name=y, kernel_shape=[kh, kw],
                strides=[stride, stride], pads=pads, group=group, dilations=[1, 1],
            )
        )
        return self.relu(y) if relu else y

    def relu(self, x):
        y = self.name("relu")
        self.nodes.append(helper.make_node("Relu", [x], [y], name=y))
        return y

    def add(self, a, b):
        y = self.name("add")
        self.nodes.append(helper.make_node("Add", [a, b], [y], name=y))
        return y

    def gap(self, x):
        y = self.name("gap")
        self.nodes.append(helper.make_node("GlobalAveragePool", [x], [y], name=y))
        return y

    def avgpool(self, x, kernel):
        y = self.name("avgpool")
        self.nodes.append(
            helper.make_node("AveragePool", [x], [y], name=y, kernel_shape=list(kernel),
                             strides=list(kernel), pads=[0, 0, 0, 0])
        )
        return y

    def flatten(self, x):
        y = self.name("flatten")
        self.nodes.append(helper.make_node("Flatten", [x], [y], name=y, axis=1))
        return y

    def gemm(self, x, cin, cout, out_name):
        w = self.rng.normal(0.0, np.sqrt(1.0 / cin), size=(cout, cin))
        b = self.rng.normal(0.0, 0.05, size=(cout,))
        wn, bn = self.const("fc_w", w), self.const("fc_b", b)
        self.nodes.append(helper.make_node("Gemm", [x, wn, bn], [out_name], name="fc", transB=1))
        return out_name

    def model(self, name, in_shape, out_shape):
        g = helper.make_graph(
            self.nodes, name,
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
            [helper.make_tensor_value_info("output", TensorProto.FLOAT, out_shape)],
            self.inits,
        )
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="match tools/make_models.py")
        m.ir_version = 8
        onnx.checker.check_model(m, full_check=True)
        return m


def resnet8():
    """MLPerf Tiny ResNet-8 shape: conv3x3 16; stages 16, 32 (s2), 64 (s2); GAP; dense 10."""
    b = Builder(seed=8)
    x = b.conv("input", 3, 16, (3, 3))
    cin = 16
    for cout, stride in ((16, 1), (32, 2), (64, 2)):
        y = b.conv(x, cin, cout, (3, 3), stride=stride)
        y = b.conv(y, cout, cout, (3, 3), relu=False)
        if stride != 1 or cin != cout:
            sc = b.conv(x, cin, cout, (1, 1), stride=stride, pads=[0, 0, 0, 0], relu=False)
        else:
            sc = x
        x = b.relu(b.add(y, sc))
        cin = cout
    x = b.flatten(b.gap(x))
    b.gemm(x, 64, 10, "output")
    return b.model("resnet8", [1, 3, 32, 32], [1, 10])


def dscnn():
    """MLPerf Tiny DS-CNN shape: conv 10x4 s2 64 ('same'), 4 x (dw 3x3 + pw 1x1), avgpool, dense 12."""
    b = Builder(seed=12)
    # 'same' padding for stride 2 on 49x10 (output 25x5): H pads 4/5, W pads 1/1.
    x = b.conv("input", 1, 64, (10, 4), stride=2, pads=[4, 1, 5, 1])
    for _ in range(4):
        x = b.conv(x, 64, 64, (3, 3), group=64)
        x = b.conv(x, 64, 64, (1, 1), pads=[0, 0, 0, 0])
    x = b.flatten(b.avgpool(x, (25, 5)))
    b.gemm(x, 64, 12, "output")
    return b.model("dscnn", [1, 1, 49, 10], [1, 12])


def example():
    """README example: conv3x3 16 s2, depthwise 3x3, pointwise 32, GAP, dense 10 on 1x3x32x32."""
    b = Builder(seed=2024)
    x = b.conv("input", 3, 16, (3, 3), stride=2)
    x = b.conv(x, 16, 16, (3, 3), group=16)
    x = b.conv(x, 16, 32, (1, 1), pads=[0, 0, 0, 0])
    x = b.flatten(b.gap(x))
    b.gemm(x, 32, 10, "output")
    return b.model("example", [1, 3, 32, 32], [1, 10])


class RandomReader(CalibrationDataReader):
    def __init__(self, shape, seed):
        rng = np.random.default_rng(seed)
        lo, hi = CALIB_RANGE
        self.data = [
            {"input": rng.uniform(lo, hi, size=shape).astype(np.float32)}
            for _ in range(CALIB_SAMPLES)
        ]
        self.it = iter(self.data)

    def get_next(self):
        return next(self.it, None)

    def rewind(self):
        self.it = iter(self.data)


def quantize(float_model, shape, fmt, out_path, seed):
    with tempfile.TemporaryDirectory() as tmp:
        fpath = os.path.join(tmp, "float.onnx")
        onnx.save(float_model, fpath)
        quantize_static(
            fpath,
            out_path,
            RandomReader(shape, seed),
            quant_format=fmt,
            per_channel=True,
            reduce_range=False,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            calibration_providers=["CPUExecutionProvider"],
        )
    # Normalise: drop nothing semantic, but make the file independent of the run.
    m = onnx.load(out_path)
    onnx.checker.check_model(m)
    onnx.save(m, out_path)
    # Smoke test: the quantized model runs.
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(out_path, so, providers=["CPUExecutionProvider"])
    sess.run(None, {"input": np.zeros(shape, np.float32)})
    return out_path


# --------------------------------------------------------------------------------------------
# Integer ONNX dialect (DORY / NEMO / QuantLab / MATCH), built from scratch
# --------------------------------------------------------------------------------------------

INT_OPSET = 10   # as the MATCH test models (../shared/models/match-onnx)
INT_IR = 5
INT_CALIB_SAMPLES = 16   # random uint8 inputs for the requantization constants
INT_CHECK_SAMPLES = 32   # fresh random inputs for the range report and the distinctness check
INT_MIN_SCALE = 64       # smallest per-channel Mul scale: picks each layer's shift (1.5 % steps)


class IntBuilder:
    """The integer dialect, spelled exactly as the MATCH test models spell it.

    Every requantized layer is
        Conv | MatMul (uint8 activations x uint8 weights, read as unsigned)
        Constant scale (int32, 1xCx1x1), Cast to int32, Mul,
        Constant bias (int32, 1xCx1x1), Add, Constant 2^s (int32, shape [1]), Div, Floor,
        Clip (opset 10 attributes min=0, max=255), Cast to uint8
    and the last layer is MatMul, Constant bias (int32, 1xN), Cast to int32, Add, with the
    graph output declared float (holding the int32 accumulator). Scale, bias and shift are
    placeholders (1, 0, 1) here; intdialect.recalibrate sets them from calibration data.
    """

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes = []
        self.inits = []
        self.n = 0

    def tensor(self):
        self.n += 1
        return str(self.n)

    def constant(self, array):
        y = self.tensor()
        self.nodes.append(helper.make_node(
            "Constant", [], [y], value=numpy_helper.from_array(array.astype(np.int32), y)))
        return y

    def weight(self, name, shape):
        # uint8 weights over the whole 0..255 range (so a signed reading is wrong), skewed
        # towards small values (u^3) so that channels are less alike than with uniform bytes.
        u = self.rng.random(size=shape)
        w = np.floor(256.0 * u ** 3).astype(np.uint8)
        w.flat[self.rng.integers(0, w.size)] = 255  # the top value always occurs
        self.inits.append(numpy_helper.from_array(w, name))
        return name

    def requant(self, acc, c, layer):
        """Cast/Mul/Add/Div/Floor/Clip/Cast after an accumulator `acc` with c channels."""
        scale = self.constant(np.ones((1, c, 1, 1)))
        a32 = self.tensor()
        self.nodes.append(helper.make_node("Cast", [acc], [a32], to=TensorProto.INT32))
        mul = self.tensor()
        self.nodes.append(helper.make_node("Mul", [a32, scale], [mul], name=f"/{layer}/Mul"))
        bias = self.constant(np.zeros((1, c, 1, 1)))
        add = self.tensor()
        self.nodes.append(helper.make_node("Add", [mul, bias], [add], name=f"/{layer}/Add"))
        shift = self.constant(np.ones((1,)))
        div = self.tensor()
        self.nodes.append(helper.make_node("Div", [add, shift], [div], name=f"/{layer}/Div"))
        fl = self.tensor()
        self.nodes.append(helper.make_node("Floor", [div], [fl], name=f"/{layer}/Floor"))
        cl = self.tensor()
        self.nodes.append(helper.make_node("Clip", [fl], [cl], name=f"/{layer}/Clip",
                                           min=0.0, max=255.0))
        y = self.tensor()
        self.nodes.append(helper.make_node("Cast", [cl], [y], name=f"/{layer}/Cast_1",
                                           to=TensorProto.UINT8))
        return y

    def conv(self, x, layer, cin, cout, kernel, stride=1, pads=None, group=1):
        kh, kw = kernel
        if pads is None:
            pads = [kh // 2, kw // 2, kh // 2, kw // 2]
        w = self.weight(f"{layer}.weight", (cout, cin // group, kh, kw))
        acc = self.tensor()
        self.nodes.append(helper.make_node(
            "Conv", [x, w], [acc], name=f"/{layer}/Conv", dilations=[1, 1], group=group,
            kernel_shape=[kh, kw], pads=pads, strides=[stride, stride]))
        return self.requant(acc, cout, layer)

    def maxpool(self, x, kernel):
        y = self.tensor()
        self.nodes.append(helper.make_node(
            "MaxPool", [x], [y], name="/pool/MaxPool", ceil_mode=0, kernel_shape=list(kernel),
            pads=[0, 0, 0, 0], strides=list(kernel)))
        return y

    def flatten(self, x):
        y = self.tensor()
        self.nodes.append(helper.make_node("Flatten", [x], [y], name="/Flatten", axis=1))
        return y

    def classifier(self, x, cin, cout):
        """MatMul, Cast int32, Add bias: the raw accumulator, no requantization."""
        w = self.weight("classifier.weight", (cin, cout))
        acc = self.tensor()
        self.nodes.append(helper.make_node("MatMul", [x, w], [acc], name="/classifier/MatMul"))
        bias = self.constant(self.rng.integers(-4096, 4097, size=(1, cout)))
        a32 = self.tensor()
        self.nodes.append(helper.make_node("Cast", [acc], [a32], to=TensorProto.INT32))
        self.nodes.append(helper.make_node("Add", [a32, bias], ["output"],
                                           name="/classifier/Add"))
        return "output"

    def model(self, name, in_shape, out_shape):
        g = helper.make_graph(
            self.nodes, name,
            [helper.make_tensor_value_info("input", TensorProto.UINT8, in_shape)],
            [helper.make_tensor_value_info("output", TensorProto.FLOAT, out_shape)],
            self.inits,
        )
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", INT_OPSET)],
                              producer_name="match tools/make_models.py")
        m.ir_version = INT_IR
        # Structural check only: opset 10 Clip/Floor are typed float, the dialect uses them on
        # int32 (that is what the dialect is), so no full (type-inferring) check.
        onnx.checker.check_model(m)
        return m


def intdialect_kws():
    """DS-CNN in the integer dialect, shaped like MATCH's keyword_spotting: conv 10x4 s2 64
    (pads 5,1,5,1 -> 25x5), 4 x (depthwise 3x3 + pointwise 1x1), MaxPool 25x5, Flatten,
    MatMul 12."""
    b = IntBuilder(seed=4901)
    x = b.conv("input", "inputlayer", 1, 64, (10, 4), stride=2, pads=[5, 1, 5, 1])
    for i in range(1, 5):
        x = b.conv(x, f"depthwise{i}", 64, 64, (3, 3), group=64)
        x = b.conv(x, f"pointwise{i}", 64, 64, (1, 1), pads=[0, 0, 0, 0])
    x = b.flatten(b.maxpool(x, (25, 5)))
    b.classifier(x, 64, 12)
    return b.model("intdialect_kws", [1, 1, 49, 10], [1, 12])


def intdialect_vww():
    """Small MobileNet-like VWW in the integer dialect on MATCH's visual_wake_words input
    (1x3x96x96): conv 3x3 s2 8 (48x48); depthwise-separable blocks 16 (s1), 32 (s2, 24x24),
    32 (s1), 64 (s2, 12x12), 64 (s2, 6x6); MaxPool 3x3 -> 64x2x2 (so Flatten orders a real
    C x H x W tensor); MatMul 256 -> 4."""
    b = IntBuilder(seed=9601)
    x = b.conv("input", "inputblock", 3, 8, (3, 3), stride=2)
    cin = 8
    for i, (cout, stride) in enumerate(((16, 1), (32, 2), (32, 1), (64, 2), (64, 2)), start=2):
        x = b.conv(x, f"depthwise{i}", cin, cin, (3, 3), stride=stride, group=cin)
        x = b.conv(x, f"pointwise{i}", cin, cout, (1, 1), pads=[0, 0, 0, 0])
        cin = cout
    x = b.flatten(b.maxpool(x, (3, 3)))
    b.classifier(x, 64 * 2 * 2, 4)
    return b.model("intdialect_vww", [1, 3, 96, 96], [1, 4])


def worst_case_int32(model):
    """Assert int32 safety for EVERY uint8 input, not only the calibration data: per channel,
    the accumulator lies in [0, 255 * sum(w)] (uint8 x uint8), so the extremes of acc*scale+bias
    and of the final acc+bias are known. The float-declared output must stay below 2^24."""
    inits = {t.name: numpy_helper.to_array(t).astype(np.int64) for t in model.graph.initializer}
    consts = {n.output[0]: numpy_helper.to_array(attrs_of(n)["value"]).astype(np.int64)
              for n in model.graph.node if n.op_type == "Constant"}
    acc_max = {}
    for n in model.graph.node:
        if n.op_type == "Conv":
            w = inits[n.input[1]]
            acc_max[n.output[0]] = 255 * w.reshape(w.shape[0], -1).sum(axis=1).reshape(1, -1, 1, 1)
        elif n.op_type == "MatMul":
            acc_max[n.output[0]] = 255 * inits[n.input[1]].sum(axis=0).reshape(1, -1)
        elif n.op_type == "Cast" and n.input[0] in acc_max:
            acc_max[n.output[0]] = acc_max[n.input[0]]
        elif n.op_type == "Mul" and n.input[0] in acc_max:
            scale = consts[n.input[1]]
            assert (scale >= 1).all(), n.name
            acc_max[n.output[0]] = ("scaled", acc_max[n.input[0]] * scale)
        elif n.op_type == "Add" and n.input[0] in acc_max:
            a = acc_max[n.input[0]]
            bias = consts[n.input[1]]
            top = a[1] if isinstance(a, tuple) else a   # acc in [0, top] (times scale >= 1)
            extremes = np.abs(np.concatenate([(top + bias).ravel(), bias.ravel(), top.ravel()]))
            assert int(extremes.max()) < 2 ** 31, f"int32 overflow possible at {n.name}"
            if not isinstance(a, tuple):  # the final layer: declared float, must be exact
                assert int(extremes.max()) < 2 ** 24, f"not exact in float32 at {n.name}"


def layer_report(model, batch):
    """Per requantized layer: min and max of its uint8 output and the share of values clipped
    at 0 and 255, over a batch of fresh random inputs."""
    ev = Int64Evaluator(model)
    env = dict(ev.inits)
    env["input"] = batch.astype(np.int64)
    rows = []
    for n in model.graph.node:
        env[n.output[0]] = ev.eval_node(n, env)
        if n.op_type == "Clip":
            pre, v = env[n.input[0]], env[n.output[0]]
            rows.append((n.name.split("/")[1], int(v.min()), int(v.max()),
                         float((pre < 0).mean()), float((pre > 255).mean())))
    return rows, env[model.graph.output[0].name]


def intdialect_model(build, out_path, seed):
    model = build()
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    rng = np.random.default_rng(seed)
    calib = rng.integers(0, 256, size=[INT_CALIB_SAMPLES] + shape[1:]).astype(np.uint8)
    model = recalibrate(model, {"input": calib}, max_shift=24,
                        min_scale=INT_MIN_SCALE)
    onnx.checker.check_model(model)
    worst_case_int32(model)
    check = rng.integers(0, 256, size=[INT_CHECK_SAMPLES] + shape[1:]).astype(np.uint8)
    rows, out = layer_report(model, check)
    # No layer saturates: each uses (nearly) the whole 0..255 range on unseen inputs, with little
    # clipping, and every input gives its own output.
    for layer, lo, hi, under, over in rows:
        assert lo <= 16 and hi >= 239 and under < 0.1 and over < 0.1, (layer, lo, hi, under, over)
    assert len({out[k].tobytes() for k in range(INT_CHECK_SAMPLES)}) == INT_CHECK_SAMPLES
    onnx.save(model, out_path)
    shifts = sorted({int(numpy_helper.to_array(attrs_of(n)["value"])[0])
                     for n in model.graph.node if n.op_type == "Constant"
                     and numpy_helper.to_array(attrs_of(n)["value"]).shape == (1,)})
    print(f"  {len(rows)} requantized layers, Div by {shifts}; on {INT_CHECK_SAMPLES} fresh inputs"
          f" outputs span [{min(r[1] for r in rows)}..{max(r[2] for r in rows)}] (every layer"
          f" min <= {max(r[1] for r in rows)}, max >= {min(r[2] for r in rows)}), clipped below 0"
          f" <= {max(r[3] for r in rows):.1%}, above 255 <= {max(r[4] for r in rows):.1%}")
    return out_path


# --------------------------------------------------------------------------------------------
# Ternary weights in the integer dialect: a model for DIANA's analog in-memory core
# --------------------------------------------------------------------------------------------

TERNARY_CALIB = 16        # random int8 inputs that choose the requantization constants
TERNARY_CHECK = 32        # fresh random inputs for the saturation check
TERNARY_IN = (-64, 63)    # the analog core's 7-bit signed inputs (HARDWARE.md pinned choice)
TERNARY_ADC = (-32, 31)   # its 6-bit ADC output range
TERNARY_CLIPPED = 0.05    # at most this share of a layer's outputs may sit on a clip bound


class TernaryBuilder(IntBuilder):
    """The integer dialect with int8 activations and ternary weights {-1, 0, +1} (stored as
    int8 initializers), built forward on calibration data so that each layer's constants are
    chosen from the accumulators it really produces. Two requantization spellings, both the
    dialect's Mul/Add/Div/Floor/Clip/Cast chain:

      "adc"     scale 1, bias 0, Div by 2^g, Clip to the 6-bit ADC range [-32, 31]: exactly the
                analog chain floor(acc / gain) -> ADC clip with gain 2^g and an identity
                k*y + l >> shift stage, so a requantization conversion can keep it exact
      "affine"  per-channel scale and bias, Div by 2^s, Clip to [lo, hi] (calibrated like
                intdialect.recalibrate, onto a signed range): not of the analog form, so a
                conversion to it is inexact (or the layer moves off the analog core)

    Every activation that feeds a convolution or dense layer lies in [-64, 63] by construction:
    the graph input goes through a Clip to that range, and every requantized layer clips to
    [-32, 31] or [-64, 63]. Only the last layer clips to the int8 range (it is the output).
    """

    def __init__(self, seed, calib):
        super().__init__(seed)
        self.vals = {"input": calib.astype(np.int64)}  # tensor -> int64 values on calib data
        self.clipped = {}  # layer -> share of calibration outputs on a clip bound

    def ternary(self, name, shape):
        w = self.rng.choice(np.array([-1, 0, 1], np.int8), size=shape, p=[0.3, 0.4, 0.3])
        self.inits.append(numpy_helper.from_array(w, name))
        return name, w.astype(np.int64)

    def clip(self, x, layer, lo, hi):
        y = self.tensor()
        self.nodes.append(helper.make_node("Clip", [x], [y], name=f"/{layer}/Clip",
                                           min=float(lo), max=float(hi)))
        self.vals[y] = np.clip(self.vals[x], lo, hi)
        return y

    def requant_signed(self, acc, values, c, layer, kind, lo, hi):
        """The chain after the accumulator `acc` (calibration values `values`, channel axis 1);
        returns the int8 output tensor."""
        axes = tuple(i for i in range(values.ndim) if i != 1)
        bshape = [1, c] + [1] * (values.ndim - 2)
        if kind == "adc":
            scale = np.ones(c, np.int64)
            bias = np.zeros(c, np.int64)
            # The smallest gain 2^g whose clipped share is at most TERNARY_CLIPPED.
            for s in range(32):
                q = np.floor_divide(values, 2 ** s)
                if ((q <= lo) | (q >= hi)).mean() <= TERNARY_CLIPPED:
                    break
        else:
            a_lo, a_hi = values.min(axis=axes), values.max(axis=axes)
            # A quarter of the range as margin on each side: few calibration values per
            # channel (the classifier has one per input), so fresh inputs reach beyond them.
            margin = (a_hi - a_lo) // 4
            a_lo, a_hi = a_lo - margin, a_hi + margin
            span = np.maximum(a_hi - a_lo, 1)
            amax = int(np.abs(values).max()) + 1
            # The smallest shift whose per-channel scales are all >= 64 (1.5 % steps), with
            # int32 headroom (4x) for unseen inputs.
            for s in range(25):
                scale = ((hi - lo) * 2 ** s) // span
                if (scale >= INT_MIN_SCALE).all():
                    break
            bias = lo * 2 ** s - a_lo * scale
            assert int((scale * amax).max() + np.abs(bias).max()) * 4 < 2 ** 31, layer
        sc = self.constant(scale.reshape(bshape))
        a32 = self.tensor()
        self.nodes.append(helper.make_node("Cast", [acc], [a32], to=TensorProto.INT32))
        mul = self.tensor()
        self.nodes.append(helper.make_node("Mul", [a32, sc], [mul], name=f"/{layer}/Mul"))
        bi = self.constant(bias.reshape(bshape))
        add = self.tensor()
        self.nodes.append(helper.make_node("Add", [mul, bi], [add], name=f"/{layer}/Add"))
        sh = self.constant(np.array([2 ** s]))
        div = self.tensor()
        self.nodes.append(helper.make_node("Div", [add, sh], [div], name=f"/{layer}/Div"))
        fl = self.tensor()
        self.nodes.append(helper.make_node("Floor", [div], [fl], name=f"/{layer}/Floor"))
        pre = np.floor_divide(values * scale.reshape(bshape) + bias.reshape(bshape), 2 ** s)
        self.vals[fl] = pre
        cl = self.clip(fl, layer, lo, hi)
        self.clipped[layer] = float(((pre <= lo) | (pre >= hi)).mean())
        y = self.tensor()
        self.nodes.append(helper.make_node("Cast", [cl], [y], name=f"/{layer}/Cast_1",
                                           to=TensorProto.INT8))
        self.vals[y] = self.vals[cl]
        return y

    def tconv(self, x, layer, cin, cout, kernel, stride, kind, lo, hi):
        kh, kw = kernel
        pads = [kh // 2, kw // 2, kh // 2, kw // 2]
        wname, w = self.ternary(f"{layer}.weight", (cout, cin, kh, kw))
        acc = self.tensor()
        attrs = dict(dilations=[1, 1], group=1, kernel_shape=[kh, kw], pads=pads,
                     strides=[stride, stride])
        self.nodes.append(helper.make_node("Conv", [x, wname], [acc], name=f"/{layer}/Conv",
                                           **attrs))
        values = Int64Evaluator.conv(self.vals[x], w, attrs)
        return self.requant_signed(acc, values, cout, layer, kind, lo, hi)

    def tmaxpool(self, x, kernel):
        y = self.maxpool(x, kernel)
        self.vals[y] = Int64Evaluator.maxpool(self.vals[x], {"kernel_shape": list(kernel),
                                                             "strides": list(kernel)})
        return y

    def tflatten(self, x):
        y = self.flatten(x)
        v = self.vals[x]
        self.vals[y] = v.reshape(v.shape[0], -1)
        return y

    def tdense(self, x, layer, cin, cout, kind, lo, hi):
        wname, w = self.ternary(f"{layer}.weight", (cin, cout))
        acc = self.tensor()
        self.nodes.append(helper.make_node("MatMul", [x, wname], [acc], name=f"/{layer}/MatMul"))
        return self.requant_signed(acc, self.vals[x] @ w, cout, layer, kind, lo, hi)

    def signed_model(self, name, in_shape, out_shape, out):
        # The last layer's int8 tensor is the graph output.
        for n in self.nodes:
            for i, o in enumerate(n.output):
                if o == out:
                    n.output[i] = "output"
        g = helper.make_graph(
            self.nodes, name,
            [helper.make_tensor_value_info("input", TensorProto.INT8, in_shape)],
            [helper.make_tensor_value_info("output", TensorProto.INT8, out_shape)],
            self.inits,
        )
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", INT_OPSET)],
                              producer_name="match tools/make_models.py")
        m.ir_version = INT_IR
        onnx.checker.check_model(m)  # structural only, as IntBuilder.model
        return m


def intdialect_ternary(calib):
    """Ternary-weight CNN on a 1x3x32x32 int8 input, every conv/dense layer analog-eligible by
    shape (groups 1, C*FY*FX <= 1152 rows, K <= 512 columns, stride 1 or 2):
    Clip [-64, 63]; conv 3x3 16 (adc); conv 3x3 s2 32 (adc, 16x16); conv 3x3 s2 64 (affine,
    [-64, 63], 8x8); conv 3x3 64 (adc, 576 rows); MaxPool 2x2 (4x4); Flatten 1024;
    MatMul 10 (affine, [-128, 127], the int8 output)."""
    b = TernaryBuilder(seed=2302, calib=calib)
    x = b.clip("input", "inputclip", *TERNARY_IN)
    x = b.tconv(x, "conv1", 3, 16, (3, 3), 1, "adc", *TERNARY_ADC)
    x = b.tconv(x, "conv2", 16, 32, (3, 3), 2, "adc", *TERNARY_ADC)
    x = b.tconv(x, "conv3", 32, 64, (3, 3), 2, "affine", *TERNARY_IN)
    x = b.tconv(x, "conv4", 64, 64, (3, 3), 1, "adc", *TERNARY_ADC)
    x = b.tflatten(b.tmaxpool(x, (2, 2)))
    y = b.tdense(x, "classifier", 64 * 4 * 4, 10, "affine", -128, 127)
    return b.signed_model("intdialect_ternary", [1, 3, 32, 32], [1, 10], y), b.clipped


def ternary_model(out_path, seed):
    shape = [1, 3, 32, 32]
    rng = np.random.default_rng(seed)
    calib = rng.integers(-128, 128, size=[TERNARY_CALIB] + shape[1:])
    model, clipped = intdialect_ternary(calib)
    # Independent re-evaluation on fresh inputs: int32-safe (the evaluator asserts it), every
    # conv/dense input inside [-64, 63], no layer saturated, every input its own output.
    check = rng.integers(-128, 128, size=[TERNARY_CHECK] + shape[1:])
    ev = Int64Evaluator(model)
    env = dict(ev.inits)
    env["input"] = check
    worst = {}
    for n in model.graph.node:
        env[n.output[0]] = ev.eval_node(n, env)
        if n.op_type in ("Conv", "MatMul"):
            x = env[n.input[0]]
            assert x.min() >= TERNARY_IN[0] and x.max() <= TERNARY_IN[1], n.name
            w = ev.inits[n.input[1]]
            assert set(np.unique(w)) <= {-1, 0, 1}, n.name
        if n.op_type == "Clip" and n.name != "/inputclip/Clip":
            pre, lo, hi = env[n.input[0]], attrs_of(n)["min"], attrs_of(n)["max"]
            worst[n.name.split("/")[1]] = float(((pre <= lo) | (pre >= hi)).mean())
    assert all(v <= 2 * TERNARY_CLIPPED for v in worst.values()), worst
    out = env[model.graph.output[0].name]
    assert len({out[k].tobytes() for k in range(TERNARY_CHECK)}) == TERNARY_CHECK
    onnx.save(model, out_path)
    shifts = [int(numpy_helper.to_array(attrs_of(n)["value"])[0]).bit_length() - 1
              for n in model.graph.node if n.op_type == "Constant"
              and numpy_helper.to_array(attrs_of(n)["value"]).shape == (1,)]
    print(f"  5 ternary layers, Div by 2^{shifts}; on {TERNARY_CHECK} fresh inputs at most "
          f"{max(worst.values()):.1%} of a layer's outputs on a clip bound "
          f"(calibration: {max(clipped.values()):.1%})")
    return out_path


def main():
    # quantize_static logs advice ("consider pre-processing", "use QDQ for s8s8") as warnings.
    logging.getLogger().setLevel(logging.ERROR)
    # Single-threaded ORT everywhere (calibration runs through onnxruntime).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    gold = os.path.join(ROOT, "tests", "golden", "models")
    ex = os.path.join(ROOT, "examples")
    os.makedirs(gold, exist_ok=True)
    os.makedirs(ex, exist_ok=True)
    jobs = [
        (resnet8(), [1, 3, 32, 32], "resnet8", 1008),
        (dscnn(), [1, 1, 49, 10], "dscnn", 1012),
    ]
    for model, shape, name, seed in jobs:
        for fmt, suffix in ((QuantFormat.QDQ, "qdq"), (QuantFormat.QOperator, "qop")):
            p = quantize(model, shape, fmt, os.path.join(gold, f"{name}_{suffix}.onnx"), seed)
            print(f"{os.path.relpath(p, ROOT)}: {os.path.getsize(p)} bytes")
    for build, name, seed in ((intdialect_kws, "kws", 4902), (intdialect_vww, "vww", 9602)):
        p = intdialect_model(build, os.path.join(gold, f"intdialect_{name}.onnx"), seed)
        print(f"{os.path.relpath(p, ROOT)}: {os.path.getsize(p)} bytes")
    p = quantize(example(), [1, 3, 32, 32], QuantFormat.QDQ,
                 os.path.join(ex, "example_int8.onnx"), 2025)
    print(f"{os.path.relpath(p, ROOT)}: {os.path.getsize(p)} bytes")
    p = ternary_model(os.path.join(gold, "intdialect_ternary.onnx"), 2303)
    print(f"{os.path.relpath(p, ROOT)}: {os.path.getsize(p)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
