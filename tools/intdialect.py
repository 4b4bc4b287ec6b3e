"""The integer ONNX dialect (DORY / NEMO / QuantLab / MATCH): onnxruntime rewrite, int64
reference evaluator (a check only), and calibration of the requantization constants.

Shared by tools/make_models.py and tools/make_golden.py.
"""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def attrs_of(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def rewrite_integer_dialect(model, signed=False):
    """Rewrite the integer dialect so that onnxruntime runs it exactly in integers.

    Conv -> ConvInteger, MatMul -> MatMulInteger (a float operand holding integers becomes
    uint8 (activations, via Cast) or int8 (weights, converted initializer)), Floor -> Identity
    (Div of int32 truncates toward zero; the Clip at 0 that follows makes truncation and floor
    agree, which the numpy check confirms), Clip attributes -> int32 inputs (opset 13), a final
    Cast to float where the graph output is declared float but computed in int32.

    signed=True, for models with signed activations (tools/make_models.py's
    intdialect_ternary), where truncation and floor differ below zero: each Div is preceded by
    a - Mod(a, d) (Mod with fmod=0 takes the divisor's sign, so the quotient is exact and
    equals the floor), and a Clip of a graph input gets bounds of that input's type.
    """
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    del m.opset_import[:]
    m.opset_import.extend([helper.make_opsetid("", 13)])
    m.ir_version = 7
    inits = {t.name: t for t in g.initializer}
    graph_inputs = {v.name: v for v in g.input}
    new_nodes = []
    counter = [0]

    def fresh(prefix):
        counter[0] += 1
        return f"__rw_{prefix}_{counter[0]}"

    def int_operand(name, signed_weight):
        """Name of an 8-bit integer version of a tensor that may be declared float."""
        if name in inits:
            t = inits[name]
            if t.data_type in (TensorProto.UINT8, TensorProto.INT8):
                return name
            a = numpy_helper.to_array(t)
            assert np.array_equal(a, np.round(a)), name
            dt = np.int8 if signed_weight else np.uint8
            info = np.iinfo(dt)
            assert a.min() >= info.min and a.max() <= info.max, name
            t.CopyFrom(numpy_helper.from_array(a.astype(dt), name))
            return name
        if name in graph_inputs and graph_inputs[name].type.tensor_type.elem_type == TensorProto.FLOAT:
            out = fresh("u8")
            new_nodes.append(helper.make_node("Cast", [name], [out], to=TensorProto.UINT8))
            return out
        return name

    for n in g.node:
        a = attrs_of(n)
        if n.op_type == "Conv":
            x = int_operand(n.input[0], False)
            w = int_operand(n.input[1], True)
            assert len(n.input) == 2, "Conv with bias not expected in the integer dialect"
            new_nodes.append(helper.make_node("ConvInteger", [x, w], list(n.output), name=n.name, **a))
        elif n.op_type == "MatMul":
            x = int_operand(n.input[0], False)
            w = int_operand(n.input[1], True)
            new_nodes.append(helper.make_node("MatMulInteger", [x, w], list(n.output), name=n.name))
        elif n.op_type == "Floor":
            new_nodes.append(helper.make_node("Identity", list(n.input), list(n.output), name=n.name))
        elif n.op_type == "Div" and signed:
            mod, exact = fresh("mod"), fresh("exact")
            new_nodes.append(helper.make_node("Mod", [n.input[0], n.input[1]], [mod], fmod=0))
            new_nodes.append(helper.make_node("Sub", [n.input[0], mod], [exact]))
            new_nodes.append(helper.make_node("Div", [exact, n.input[1]], list(n.output), name=n.name))
        elif n.op_type == "Clip":
            lo, hi = fresh("clip_min"), fresh("clip_max")
            bound = np.int32
            if signed and n.input[0] in graph_inputs:
                bound = onnx.helper.tensor_dtype_to_np_dtype(
                    graph_inputs[n.input[0]].type.tensor_type.elem_type)
            new_nodes.append(helper.make_node("Constant", [], [lo], value=numpy_helper.from_array(
                np.array(int(a["min"]), bound), lo)))
            new_nodes.append(helper.make_node("Constant", [], [hi], value=numpy_helper.from_array(
                np.array(int(a["max"]), bound), hi)))
            new_nodes.append(helper.make_node("Clip", [n.input[0], lo, hi], list(n.output), name=n.name))
        else:
            new = onnx.NodeProto()
            new.CopyFrom(n)
            new_nodes.append(new)

    # Graph outputs declared float but computed in int32: compute under a new name, Cast to float.
    for o in g.output:
        if o.type.tensor_type.elem_type == TensorProto.FLOAT:
            inner = fresh("acc")
            for n in new_nodes:
                for i, out in enumerate(n.output):
                    if out == o.name:
                        n.output[i] = inner
            new_nodes.append(helper.make_node("Cast", [inner], [o.name], to=TensorProto.FLOAT))
    del g.node[:]
    g.node.extend(new_nodes)
    del g.value_info[:]
    return m


class Int64Evaluator:
    """Independent evaluation of the integer dialect in int64, as DESIGN.md states its semantics.

    Used only as a check of the onnxruntime outputs; never written to the golden files.
    """

    I32 = (-(2 ** 31), 2 ** 31 - 1)

    def __init__(self, model):
        self.model = model
        self.inits = {}
        for t in model.graph.initializer:
            a = numpy_helper.to_array(t)
            if a.dtype.kind == "f":
                assert np.array_equal(a, np.round(a)), t.name
            self.inits[t.name] = a.astype(np.int64)

    @staticmethod
    def conv(x, w, a):
        n, c, h, wd = x.shape
        k, cg, kh, kw = w.shape
        group = a.get("group", 1)
        pt, pl, pb, pr = a.get("pads", [0, 0, 0, 0])
        sh, sw = a.get("strides", [1, 1])
        assert a.get("dilations", [1, 1]) == [1, 1]
        xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
        oh = (h + pt + pb - kh) // sh + 1
        ow = (wd + pl + pr - kw) // sw + 1
        # patches: n, c, oh, ow, kh, kw
        patches = np.empty((n, c, oh, ow, kh, kw), np.int64)
        for i in range(kh):
            for j in range(kw):
                patches[:, :, :, :, i, j] = xp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw]
        kpg = k // group
        out = np.empty((n, k, oh, ow), np.int64)
        for gi in range(group):
            p = patches[:, gi * cg:(gi + 1) * cg]
            wg = w[gi * kpg:(gi + 1) * kpg]
            out[:, gi * kpg:(gi + 1) * kpg] = np.einsum("nchwij,kcij->nkhw", p, wg)
        return out

    @staticmethod
    def maxpool(x, a):
        kh, kw = a["kernel_shape"]
        sh, sw = a.get("strides", [1, 1])
        assert a.get("pads", [0, 0, 0, 0]) == [0, 0, 0, 0] and a.get("ceil_mode", 0) == 0
        n, c, h, w = x.shape
        oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
        out = np.full((n, c, oh, ow), np.iinfo(np.int64).min, np.int64)
        for i in range(kh):
            for j in range(kw):
                out = np.maximum(out, x[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw])
        return out

    def check_i32(self, v, what):
        if v.dtype.kind == "i":
            assert v.min() >= self.I32[0] and v.max() <= self.I32[1], f"int32 overflow at {what}"

    def eval_node(self, n, env):
        a = attrs_of(n)
        ins = [env[i] for i in n.input]
        op = n.op_type
        if op == "Constant":
            v = numpy_helper.to_array(a["value"]).astype(np.int64)
        elif op == "Conv":
            v = self.conv(ins[0], ins[1], a)
        elif op == "MatMul":
            v = ins[0] @ ins[1]
        elif op == "Cast":
            if a["to"] == TensorProto.UINT8:
                assert ins[0].min() >= 0 and ins[0].max() <= 255, f"uint8 cast range at {n.output[0]}"
            v = ins[0]
        elif op == "Mul":
            v = ins[0] * ins[1]
        elif op == "Add":
            v = ins[0] + ins[1]
        elif op == "Div":
            d = ins[1]
            assert (d > 0).all() and ((d & (d - 1)) == 0).all(), "Div by a power of two expected"
            v = ("div", ins[0], d)  # exact rational, resolved by the Floor that follows
        elif op == "Floor":
            _, num, den = ins[0]
            v = np.floor_divide(num, den)  # floor, i.e. arithmetic shift right
        elif op == "Clip":
            v = np.clip(ins[0], int(a["min"]), int(a["max"]))
        elif op == "MaxPool":
            v = self.maxpool(ins[0], a)
        elif op == "Flatten":
            x = ins[0]
            axis = a.get("axis", 1)
            v = x.reshape(int(np.prod(x.shape[:axis])), -1)
        else:
            raise NotImplementedError(op)
        if not isinstance(v, tuple):
            self.check_i32(v, n.output[0])
        return v

    def run(self, feeds):
        env = dict(self.inits)
        for name, x in feeds.items():
            assert np.array_equal(x, np.round(x)), name
            env[name] = np.asarray(x).astype(np.int64)
        for n in self.model.graph.node:
            env[n.output[0]] = self.eval_node(n, env)
        return [env[o.name] for o in self.model.graph.output]


def recalibrate(model, calib_inputs, max_shift=15, min_scale=None):
    """Return a copy of an integer-dialect model whose per-channel requantization constants
    (the Mul scale, the Add bias and the Div power of two of every Conv/MatMul -> Cast -> Mul ->
    Add -> Div -> Floor -> Clip -> Cast block) are chosen so that, on the calibration inputs,
    each channel's accumulator range [lo, hi] maps onto [0, 255]: scale = 255 * 2^s // (hi - lo),
    bias = -lo * scale, Div by 2^s.

    Structure, weights and the final (unrequantized) layer are unchanged. tools/make_models.py
    builds its integer-dialect models with placeholder constants and sets them with this.
    (The MATCH test models in ../shared/models/match-onnx use random unsigned weights with
    constants that saturate every layer to 255, so their outputs do not depend on the input.)

    calib_inputs: {input name: array with a leading batch axis (N, ...)}.
    """
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    producer = {o: n for n in g.node for o in n.output}
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def const_node(name):
        n = producer[name]
        assert n.op_type == "Constant", name
        return n

    def set_const(node, array):
        t = numpy_helper.from_array(array.astype(np.int32), node.output[0])
        for a in node.attribute:
            if a.name == "value":
                a.t.CopyFrom(t)

    ev = Int64Evaluator(m)
    env = dict(ev.inits)
    for name, x in calib_inputs.items():
        env[name] = np.asarray(x).astype(np.int64)
    for n in g.node:
        if n.op_type == "Mul":
            cast = producer.get(n.input[0])
            if cast is not None and cast.op_type == "Cast" and \
                    producer[cast.input[0]].op_type in ("Conv", "MatMul"):
                acc = env[n.input[0]]
                add = consumers[n.output[0]][0]
                div = consumers[add.output[0]][0]
                assert add.op_type == "Add" and div.op_type == "Div", n.output[0]
                axes = tuple(i for i in range(acc.ndim) if i != 1)
                lo = acc.min(axis=axes)
                hi = acc.max(axis=axes)
                span = np.maximum(hi - lo, 1)
                amax = int(np.abs(acc).max()) + 1
                # Default: the largest shift with int32 headroom. With min_scale: the smallest
                # shift whose every per-channel scale is >= min_scale (so shifts follow each
                # layer's accumulator range and differ between layers).
                shifts = range(max_shift, -1, -1) if min_scale is None else range(max_shift + 1)
                for s in shifts:
                    scale = (255 * 2 ** s) // span
                    if min_scale is not None and (scale < min_scale).any():
                        continue
                    if (scale < 1).any():
                        raise ValueError(f"cannot requantize {n.output[0]}: range too wide")
                    # 4x headroom so that unseen inputs stay inside int32 as well
                    if int((scale * amax).max()) * 4 < 2 ** 31 and \
                            int(np.abs(lo * scale).max()) * 4 < 2 ** 31:
                        break
                    if min_scale is not None:
                        raise ValueError(f"cannot requantize {n.output[0]} within int32")
                else:
                    raise ValueError(f"cannot requantize {n.output[0]} within int32")
                mul_c, add_c, div_c = const_node(n.input[1]), const_node(add.input[1]), \
                    const_node(div.input[1])
                shape = list(numpy_helper.to_array(mul_c.attribute[0].t).shape)
                set_const(mul_c, scale.reshape(shape))
                set_const(add_c, (-lo * scale).reshape(shape))
                set_const(div_c, np.array(2 ** s).reshape(
                    numpy_helper.to_array(div_c.attribute[0].t).shape))
                for c in (mul_c, add_c, div_c):
                    env[c.output[0]] = numpy_helper.to_array(c.attribute[0].t).astype(np.int64)
        env[n.output[0]] = ev.eval_node(n, env)
    return m
