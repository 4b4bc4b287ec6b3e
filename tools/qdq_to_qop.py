"""Rewrite a QDQ ONNX model so that EVERY DequantizeLinear -> op -> QuantizeLinear group becomes
an onnxruntime integer operator (a library for tools/make_golden.py).

Why: with ORT_ENABLE_ALL onnxruntime fuses only some QDQ groups into integer kernels. On
resnet8_qdq it keeps the convs and adds around the residual branch points (where a quantized
activation feeds two consumers) as float DQ -> Conv/Add -> Q, so "ORT_DISABLE_ALL == ORT_ENABLE_ALL" does not prove that a case holds
under integer semantics. This rewrite forces the integer kernel for every group, so running it
gives the fully integer result (int32 accumulate, requantize, round half to even) at every
layer.

    Conv               -> QLinearConv                     (ONNX)
    MatMul             -> QLinearMatMul                   (ONNX)
    Gemm               -> QGemm                           (com.microsoft)
    Add                -> QLinearAdd                      (com.microsoft)
    Mul                -> QLinearMul                      (com.microsoft)
    GlobalAveragePool  -> QLinearGlobalAveragePool        (com.microsoft, channels_last=0)
    AveragePool        -> QLinearAveragePool              (com.microsoft, channels_last=0)
    Flatten, Reshape   -> the same op on the int8 tensor  (input and output quantization must be
                          equal, which is what the quantizer writes)

The QuantizeLinear of a float graph input and the DequantizeLinear of a float graph output stay
(the float boundary). Biases: the int32 tensor under the bias DequantizeLinear is used directly;
its zero point must be 0 (the quantizer's bias scale is input scale x weight scale, which is what
the integer kernels assume). Anything else (an op not listed, a float input not produced by a
DequantizeLinear, an op output not consumed by exactly one QuantizeLinear) raises: no silent
fallback to float.
"""

import numpy as np
import onnx
from onnx import helper, numpy_helper

MS = "com.microsoft"


def attrs(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def qdq_to_qop(model):
    """Return a new ModelProto: `model` (QDQ format) with every DQ -> op -> Q group replaced by
    an integer operator. `model` is not modified."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    inits = {t.name: t for t in g.initializer}
    graph_inputs = {v.name for v in g.input}
    graph_outputs = {v.name for v in g.output}
    producer = {o: n for n in g.node for o in n.output}
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def const(name):
        return numpy_helper.to_array(inits[name]) if name in inits else None

    def dq(name):
        """[q, scale, zero_point] under the DequantizeLinear that produces `name`."""
        p = producer.get(name)
        if p is None or p.op_type != "DequantizeLinear":
            raise ValueError(f"{name}: float operand not produced by a DequantizeLinear "
                             f"({p.op_type if p else 'graph input or initializer'})")
        q = list(p.input)
        if len(q) < 3:
            raise ValueError(f"{p.name}: DequantizeLinear without a zero point")
        return q

    def q_after(node):
        """The one QuantizeLinear consuming the op's (single) output."""
        (out,) = node.output
        cs = consumers.get(out, [])
        if out in graph_outputs or len(cs) != 1 or cs[0].op_type != "QuantizeLinear":
            raise ValueError(f"{node.name} ({node.op_type}): output not consumed by exactly one "
                             "QuantizeLinear")
        q = cs[0]
        if len(q.input) < 3:
            raise ValueError(f"{q.name}: QuantizeLinear without a zero point")
        return q

    def bias(name):
        b, _, zp = dq(name)
        if not np.all(const(zp) == 0):
            raise ValueError(f"{name}: bias zero point is not 0")
        return b

    def same_quant(a, b):
        ca, cb = const(a), const(b)
        return a == b or (ca is not None and cb is not None and np.array_equal(ca, cb))

    new_nodes = []
    for n in g.node:
        t = n.op_type
        if t == "QuantizeLinear":
            if n.input[0] in graph_inputs:  # float boundary in
                new_nodes.append(n)
            continue
        if t == "DequantizeLinear":
            if n.output[0] in graph_outputs:  # float boundary out
                new_nodes.append(n)
            continue
        a = attrs(n)
        q = q_after(n)
        y_sz = list(q.input[1:3])
        out = [q.output[0]]
        if t == "Conv":
            x, w = dq(n.input[0]), dq(n.input[1])
            b = [bias(n.input[2])] if len(n.input) > 2 and n.input[2] else []
            new_nodes.append(helper.make_node("QLinearConv", x + w + y_sz + b, out, name=n.name, **a))
        elif t == "MatMul":
            x, w = dq(n.input[0]), dq(n.input[1])
            new_nodes.append(helper.make_node("QLinearMatMul", x + w + y_sz, out, name=n.name))
        elif t == "Gemm":
            x, w = dq(n.input[0]), dq(n.input[1])
            c = [bias(n.input[2])] if len(n.input) > 2 and n.input[2] else [""]
            if a.get("beta", 1.0) != 1.0:
                raise ValueError(f"{n.name}: Gemm beta != 1")
            a.pop("beta", None)  # QGemm has alpha, transA, transB only
            new_nodes.append(helper.make_node("QGemm", x + w + c + y_sz, out, name=n.name,
                                              domain=MS, **a))
        elif t in ("Add", "Mul"):
            x, y = dq(n.input[0]), dq(n.input[1])
            new_nodes.append(helper.make_node("QLinear" + t, x + y + y_sz, out, name=n.name,
                                              domain=MS))
        elif t == "GlobalAveragePool":
            x = dq(n.input[0])
            new_nodes.append(helper.make_node("QLinearGlobalAveragePool", x + y_sz, out,
                                              name=n.name, domain=MS, channels_last=0))
        elif t == "AveragePool":
            x = dq(n.input[0])
            new_nodes.append(helper.make_node("QLinearAveragePool", x + y_sz, out, name=n.name,
                                              domain=MS, channels_last=0, **a))
        elif t in ("Flatten", "Reshape"):
            x = dq(n.input[0])
            if not (same_quant(x[1], y_sz[0]) and same_quant(x[2], y_sz[1])):
                raise ValueError(f"{n.name}: {t} changes the quantization")
            new_nodes.append(helper.make_node(t, [x[0]] + list(n.input[1:]), out, name=n.name, **a))
        else:
            raise ValueError(f"{n.name}: no integer operator for {t}")

    del g.node[:]
    g.node.extend(new_nodes)
    # Drop initializers no node reads any more (the float views the DQs produced are gone).
    used = {i for n in new_nodes for i in n.input}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    del g.value_info[:]
    if not any(o.domain == MS for o in m.opset_import):
        m.opset_import.append(helper.make_opsetid(MS, 1))
    return m


def integer_ops(model):
    """The op types of a rewritten model (for a report / assertion)."""
    return [n.op_type for n in model.graph.node]
