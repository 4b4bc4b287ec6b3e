#!/usr/bin/env python3
"""Make the golden vectors in tests/golden/ with the REAL runtimes (never our code).

  TFLite   ../shared/models/mlperf-tiny{,-logits}/*.tflite  -> TFLite Micro (pip tflite-micro)
  ONNX     tests/golden/models/*.onnx, examples/*.onnx       -> onnxruntime, CPU EP, ORT_DISABLE_ALL;
                                                                QDQ cases kept only where it equals
                                                                ORT_ENABLE_ALL and the fully integer
                                                                rewrite (tools/qdq_to_qop.py)
  ONNX     ../shared/models/match-onnx/*.onnx,
           tests/golden/models/intdialect_*.onnx (integer dialect)
                                                             -> onnxruntime on a mechanical integer
                                                                rewrite, checked against an
                                                                independent int64 numpy evaluator
  ONNX     ../shared/models/onnx-node/*                      -> the node tests' own shipped data
                                                                (cross-checked with onnxruntime)

Writes tests/golden/<id>/case_<k>/{input_i,output_j}.bin and tests/golden/manifest.json as
specified in tests/golden/README.md. Deterministic (seeds derived from the model id), so running
it twice gives byte-identical files. Run tools/make_models.py first.

Usage (from anywhere):  python tools/make_golden.py
"""

import glob
import importlib.metadata
import json
import re
import os
import shutil
import sys
import zlib

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper
import onnxruntime as ort
from tflite_micro.python.tflite_micro import runtime as tflm
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as tflite_fb

sys.dont_write_bytecode = True  # no tools/__pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_models import CALIB_RANGE  # noqa: E402
from intdialect import Int64Evaluator, attrs_of, rewrite_integer_dialect  # noqa: E402
from qdq_to_qop import integer_ops, qdq_to_qop  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared", "models"))
GOLDEN = os.path.join(ROOT, "tests", "golden")
CASES = 8
TFLM_ARENA = 4 * 1024 * 1024  # bytes; the largest model (vww) needs well under 1 MiB

TFLM_VERSION = importlib.metadata.version("tflite-micro")  # the pip release, as pinned
RT_TFLM = f"tflite-micro {TFLM_VERSION}"
RT_ORT = f"onnxruntime {ort.__version__} (ORT_DISABLE_ALL)"
ort.set_default_logger_severity(4)
RT_NODE = "onnx 1.22.0 backend node test data (test_data_set_0)"

DTYPES = {
    np.dtype(np.int8): "i8",
    np.dtype(np.uint8): "u8",
    np.dtype(np.int16): "i16",
    np.dtype(np.int32): "i32",
    np.dtype(np.int64): "i64",
    np.dtype(np.float32): "f32",
}
ONNX_DTYPES = {
    TensorProto.INT8: np.dtype(np.int8),
    TensorProto.UINT8: np.dtype(np.uint8),
    TensorProto.INT16: np.dtype(np.int16),
    TensorProto.INT32: np.dtype(np.int32),
    TensorProto.INT64: np.dtype(np.int64),
    TensorProto.FLOAT: np.dtype(np.float32),
}


def rel(path):
    """Path relative to the repository root, with forward slashes."""
    return os.path.relpath(os.path.abspath(path), ROOT).replace(os.sep, "/")


def seed_of(model_id):
    return zlib.crc32(model_id.encode("utf-8"))


def random_input(rng, dtype, shape, float_range=None):
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, int(info.max) + 1, size=shape, dtype=np.int64).astype(dtype)
    lo, hi = float_range
    return rng.uniform(lo, hi, size=shape).astype(dtype)


def write_bin(path, array, dtype):
    a = np.ascontiguousarray(np.asarray(array), dtype=np.dtype(dtype).newbyteorder("<"))
    with open(path, "wb") as f:
        f.write(a.tobytes(order="C"))


def tensor_entry(name, dtype, shape):
    return {"name": name, "dtype": DTYPES[np.dtype(dtype)], "shape": [int(d) for d in shape]}


def write_cases(model_id, inputs_per_case, outputs_per_case):
    base = os.path.join(GOLDEN, *model_id.split("/"))
    if os.path.isdir(base):
        shutil.rmtree(base)
    for k, (ins, outs) in enumerate(zip(inputs_per_case, outputs_per_case)):
        d = os.path.join(base, f"case_{k}")
        os.makedirs(d)
        for i, a in enumerate(ins):
            write_bin(os.path.join(d, f"input_{i}.bin"), a, a.dtype)
        for j, a in enumerate(outs):
            write_bin(os.path.join(d, f"output_{j}.bin"), a, a.dtype)


def entry(model_id, model, runtime, inputs, outputs, cases, exact=True, atol=None,
          fold=None, note=None):
    e = {
        "id": model_id,
        "model": rel(model),
        "runtime": runtime,
        "fold_inputs_from": rel(fold) if fold else None,
        "inputs": inputs,
        "outputs": outputs,
        "cases": cases,
        "exact": exact,
    }
    if atol is not None:
        e["atol"] = atol
    if note:
        e["note"] = note
    return e


def summary(model_id, outs):
    flat = [np.concatenate([o.ravel() for o in case]) for case in outs]
    distinct = len({f.tobytes() for f in flat})
    print(f"  {model_id}: {len(outs)} cases, {distinct} distinct output vectors")
    return distinct


# --------------------------------------------------------------------------------------------
# TFLite through TFLite Micro
# --------------------------------------------------------------------------------------------

TFLITE_TYPES = {
    tflite_fb.TensorType.INT8: np.int8,
    tflite_fb.TensorType.UINT8: np.uint8,
    tflite_fb.TensorType.INT16: np.int16,
    tflite_fb.TensorType.INT32: np.int32,
    tflite_fb.TensorType.INT64: np.int64,
    tflite_fb.TensorType.FLOAT32: np.float32,
}


def tflite_io(path):
    """(inputs, outputs, variable tensor names, op names) of subgraph 0 from the flatbuffer."""
    with open(path, "rb") as f:
        m = tflm.convert_bytearray_to_object(bytearray(f.read()))
    sg = m.subgraphs[0]
    ops = {v: k for k, v in vars(tflite_fb.BuiltinOperator).items() if not k.startswith("_")}

    def desc(i):
        t = sg.tensors[i]
        return (t.name.decode(), np.dtype(TFLITE_TYPES[t.type]), [int(d) for d in t.shape])

    op_names = [ops[tflm.get_builtin_code_from_operator_code(m.operatorCodes[o.opcodeIndex])]
                for o in sg.operators]
    variables = [t.name.decode() for t in sg.tensors if t.isVariable]
    return ([desc(i) for i in sg.inputs], [desc(i) for i in sg.outputs], variables, op_names,
            len(m.subgraphs))


def golden_tflite(path, model_id):
    ins, outs, variables, op_names, n_sub = tflite_io(path)
    stateful = bool(variables) or any(
        o in ("VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE") for o in op_names)
    interp = tflm.Interpreter.from_file(path, arena_size=TFLM_ARENA)
    # The interpreter reports the same types and shapes as the flatbuffer.
    for i, (_, dt, shape) in enumerate(ins):
        d = interp.get_input_details(i)
        assert np.dtype(d["dtype"]) == dt and list(d["shape"]) == shape, (path, i, d)
    for j, (_, dt, shape) in enumerate(outs):
        d = interp.get_output_details(j)
        assert np.dtype(d["dtype"]) == dt and list(d["shape"]) == shape, (path, j, d)

    rng = np.random.default_rng(seed_of(model_id))
    all_in, all_out = [], []
    for _ in range(CASES):
        xs = [random_input(rng, dt, shape) for (_, dt, shape) in ins]
        interp.reset()  # every case starts from the initial state (no-op for stateless models)
        for i, x in enumerate(xs):
            interp.set_input(x, i)
        interp.invoke()
        ys = [np.array(interp.get_output(j), copy=True) for j in range(len(outs))]
        # Stateless check: invoking again on the same input without reset gives the same
        # result. The input must be set again: TFLM's memory planner lets later tensors reuse
        # the input buffer, so after invoke() the input tensor no longer holds the input.
        for i, x in enumerate(xs):
            interp.set_input(x, i)
        interp.invoke()
        again = [np.array(interp.get_output(j), copy=True) for j in range(len(outs))]
        if not stateful:
            assert all(np.array_equal(a, b) for a, b in zip(ys, again)), f"{path}: not stateless"
        for y, (_, dt, shape) in zip(ys, outs):
            assert y.dtype == dt and list(y.shape) == shape
        all_in.append(xs)
        all_out.append(ys)
    write_cases(model_id, all_in, all_out)
    summary(model_id, all_out)
    note = None
    if "str_ww" in model_id:
        note = ("whole-window model: one 1x30x1x40 input (30 feature frames), no variable "
                "tensors and no resource-variable ops, so TFLite Micro runs it stateless; "
                "interpreter reset before every case")
    return entry(model_id, path, RT_TFLM,
                 [tensor_entry(n, dt, s) for n, dt, s in ins],
                 [tensor_entry(n, dt, s) for n, dt, s in outs], CASES, note=note)


# --------------------------------------------------------------------------------------------
# onnxruntime helpers
# --------------------------------------------------------------------------------------------

def ort_session(model, level=ort.GraphOptimizationLevel.ORT_DISABLE_ALL):
    so = ort.SessionOptions()
    so.graph_optimization_level = level
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 4
    src = model if isinstance(model, str) else model.SerializeToString()
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def onnx_io(model):
    def desc(v):
        tt = v.type.tensor_type
        return (v.name, ONNX_DTYPES[tt.elem_type], [int(d.dim_value) for d in tt.shape.dim])

    inits = {t.name for t in model.graph.initializer}
    return ([desc(v) for v in model.graph.input if v.name not in inits],
            [desc(v) for v in model.graph.output])


# --------------------------------------------------------------------------------------------
# Models made by tools/make_models.py (QDQ and QOperator), float boundary
# --------------------------------------------------------------------------------------------

REDRAWS = 100  # per case; an assertion, not a budget: about 1 % of draws are redrawn


def golden_made(path, model_id):
    """Golden vectors from onnxruntime with ORT_DISABLE_ALL (the reference kernels, graph as
    written). For QDQ models that is the float path: DequantizeLinear -> float Conv/Gemm/Add ->
    QuantizeLinear. An integer implementation (int32 accumulate, requantize, round half to even)
    differs from it by 1-2 LSB on about 1 % of random inputs: a float sum landing on the other
    side of a rounding boundary (or exactly on a .5 tie, depending on summation order). Neither
    is more correct, so for QDQ models a case is kept only if three runs agree:

      1. ORT_DISABLE_ALL on the model                   float DQ -> op -> Q (committed output)
      2. ORT_ENABLE_ALL on the model                    onnxruntime's own QDQ fusion; this is
                                                        NOT fully integer: on resnet8_qdq it
                                                        leaves the convs/adds around the
                                                        residual branch points (a quantized
                                                        activation with two consumers) float
      3. ORT_DISABLE_ALL on qdq_to_qop(model)           every group an integer QLinear*/QGemm
                                                        kernel (tools/qdq_to_qop.py)

    Case k takes the k-th draw of the model's generator; if the runs disagree on it, it is
    redrawn from a generator of its own seeded by (model seed, k), so a redraw changes only that
    case. The redrawn cases are printed and kept in the manifest note. QOperator models are
    already integer kernels; they get check 2 only.
    """
    model = onnx.load(path)
    ins, outs = onnx_io(model)
    names = [n for n, _, _ in outs]
    qdq = any(n.op_type == "DequantizeLinear" for n in model.graph.node) and not any(
        n.domain == "com.microsoft" or n.op_type.startswith("QLinear") for n in model.graph.node)
    sessions = [ort_session(path), ort_session(path, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)]
    if qdq:
        integer = qdq_to_qop(model)
        onnx.checker.check_model(integer)
        assert all(t in ("QuantizeLinear", "DequantizeLinear", "Flatten") or t.startswith("QLinear")
                   or t == "QGemm" for t in integer_ops(integer)), integer_ops(integer)
        sessions.append(ort_session(integer))

    def run(xs):
        """ORT_DISABLE_ALL outputs if every session agrees on them, else None."""
        feed = {n: x for (n, _, _), x in zip(ins, xs)}
        ys = [s.run(names, feed) for s in sessions]
        if all(np.array_equal(a, b) for other in ys[1:] for a, b in zip(ys[0], other)):
            return ys[0]
        return None

    def draw(rng):
        return [random_input(rng, dt, shape, CALIB_RANGE) for (_, dt, shape) in ins]

    seed = seed_of(model_id)
    rng = np.random.default_rng(seed)
    all_in, all_out, redrawn = [], [], []
    for k in range(CASES):
        xs = draw(rng)
        ys = run(xs)
        if ys is None:
            redraw_rng = np.random.default_rng([seed, k])
            for attempt in range(REDRAWS):
                xs = draw(redraw_rng)
                ys = run(xs)
                if ys is not None:
                    break
            assert ys is not None, f"{model_id} case {k}: no agreeing draw"
            redrawn.append((k, attempt + 1))
        all_in.append(xs)
        all_out.append([np.asarray(y) for y in ys])
    write_cases(model_id, all_in, all_out)
    summary(model_id, all_out)
    fmt = "QDQ" if qdq else "QOperator"
    checks = ("ORT_ENABLE_ALL and the fully integer rewrite (tools/qdq_to_qop.py)" if qdq
              else "ORT_ENABLE_ALL")
    if redrawn:
        print("    redrawn: " + ", ".join(f"case {k} ({a} draw(s))" for k, a in redrawn)
              + f": ORT_DISABLE_ALL, {checks} disagreed")
    else:
        print(f"    no redraws: ORT_DISABLE_ALL == {checks} on every first draw")
    if qdq:
        agree = ("Every case gives the same output with ORT_ENABLE_ALL (onnxruntime's partial QDQ "
                 "fusion) and with every DQ->op->Q group as an integer QLinear*/QGemm kernel "
                 "(tools/qdq_to_qop.py), so it holds under float and integer semantics")
    else:
        agree = "Every case gives the same output with ORT_ENABLE_ALL (already integer kernels)"
    note = (f"{fmt} model from onnxruntime quantize_static (per-channel int8 weights, int8 "
            f"activations); float input uniform in [{CALIB_RANGE[0]}, {CALIB_RANGE[1]}] "
            "(the calibration range); float output = dequantized int8. " + agree
            + ("; redrawn where they disagreed: "
               + ", ".join(f"case {k}" for k, _ in redrawn) if redrawn else "")
            + ". See tools/README.md")
    return entry(model_id, path, RT_ORT,
                 [tensor_entry(n, dt, s) for n, dt, s in ins],
                 [tensor_entry(n, dt, s) for n, dt, s in outs], CASES, note=note)


# --------------------------------------------------------------------------------------------
# Integer ONNX dialect (match-onnx): mechanical rewrite for onnxruntime + int64 numpy check
# --------------------------------------------------------------------------------------------

def golden_integer_dialect(path, model_id, made=False):
    model = onnx.load(path)
    ins, outs = onnx_io(model)
    # Signed activations (int8 input or an int8 narrowing: intdialect_ternary): floor division
    # spelled exactly for onnxruntime (see intdialect.rewrite_integer_dialect).
    signed = any(dt == np.int8 for _, dt, _ in ins) or any(
        n.op_type == "Cast" and attrs_of(n)["to"] == TensorProto.INT8 for n in model.graph.node)
    rewritten = rewrite_integer_dialect(model, signed=signed)
    onnx.checker.check_model(rewritten)
    sess = ort_session(rewritten)
    sess_opt = ort_session(rewritten, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    ref = Int64Evaluator(model)
    rng = np.random.default_rng(seed_of(model_id))
    all_in, all_out = [], []
    for _ in range(CASES):
        xs = []
        for (_, dt, shape) in ins:
            if dt == np.float32:  # declared float, holds uint8 activations 0..255
                xs.append(rng.integers(0, 256, size=shape).astype(np.float32))
            else:
                xs.append(random_input(rng, dt, shape))
        feed = {n: x for (n, _, _), x in zip(ins, xs)}
        ys = sess.run([n for n, _, _ in outs], feed)
        ys_opt = sess_opt.run([n for n, _, _ in outs], feed)
        assert all(np.array_equal(a, b) for a, b in zip(ys, ys_opt)), f"{model_id}: ORT levels differ"
        expect = ref.run(feed)
        for (n, dt, shape), y, e in zip(outs, ys, expect):
            assert y.dtype == dt and list(y.shape) == shape, (n, y.dtype, y.shape)
            assert np.array_equal(y.astype(np.float64), e.astype(np.float64)), \
                f"{model_id}: onnxruntime and the int64 evaluator disagree on {n}"
            if dt == np.float32:
                assert np.abs(e).max() < 2 ** 24, "accumulator not exact in float32"
        all_in.append(xs)
        all_out.append([np.asarray(y) for y in ys])
    write_cases(model_id, all_in, all_out)
    distinct = summary(model_id, all_out)
    print("    onnxruntime (rewritten; ORT_DISABLE_ALL == ORT_ENABLE_ALL) == int64 numpy evaluation"
          " on every case")
    note = ("integer ONNX dialect; golden from onnxruntime after the mechanical rewrite in "
            "tools/make_golden.py (Conv->ConvInteger, MatMul->MatMulInteger, Floor->Identity, "
            "int32 Clip bounds, opset 13), equal to an int64 evaluation on every case; float "
            "inputs/outputs hold integers")
    if signed:
        note = note.replace("Floor->Identity", "Div->floor division (a - Mod(a, d)) / d, "
                            "Floor->Identity")
        note = note.replace("int32 Clip bounds", "int32 Clip bounds (the input's Clip: int8)")
        note = note.replace("float inputs/outputs hold integers",
                            "int8 input over the full range (the model clips it to [-64, 63])")
    if made:
        # Built by tools/make_models.py with calibrated requantization: no layer saturates, so
        # every case must give its own output (the shipped MATCH models give 1 for 8).
        assert distinct == CASES, f"{model_id}: only {distinct} distinct outputs"
        if signed:
            note += ("; model built by tools/make_models.py (random ternary weights {-1, 0, +1} "
                     "as int8, int8 activations, requantization calibrated so that no layer "
                     "saturates: 8 distinct outputs)")
        else:
            note += ("; model built by tools/make_models.py (random uint8 weights, "
                     "requantization calibrated so that no layer saturates: 8 distinct outputs)")
    return entry(model_id, path, RT_ORT,
                 [tensor_entry(n, dt, s) for n, dt, s in ins],
                 [tensor_entry(n, dt, s) for n, dt, s in outs], CASES, note=note)


# --------------------------------------------------------------------------------------------
# ONNX backend node tests: their own data, cross-checked with onnxruntime
# --------------------------------------------------------------------------------------------

def read_pb(path):
    t = TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return t.name, numpy_helper.to_array(t)


NODE_ORT_REPORT = []


def golden_node(test_dir, model_id):
    model_path = os.path.join(test_dir, "model.onnx")
    model = onnx.load(model_path)
    data = os.path.join(test_dir, "test_data_set_0")
    n_in = len(glob.glob(os.path.join(data, "input_*.pb")))
    n_out = len(glob.glob(os.path.join(data, "output_*.pb")))
    xs = [read_pb(os.path.join(data, f"input_{i}.pb")) for i in range(n_in)]
    ys = [read_pb(os.path.join(data, f"output_{j}.pb")) for j in range(n_out)]
    ins, outs = onnx_io(model)
    assert [n for n, _, _ in ins] == [n for n, _ in xs], model_id
    # Cross-check: onnxruntime on the same data gives the shipped outputs.
    try:
        got = ort_session(model_path).run(None, {n: a for n, a in xs})
    except Exception as e:  # noqa: BLE001  (e.g. per-channel ConvInteger zero points)
        why = str(e).split("Status Message: ")[-1].strip().split(" was false. ")[-1]
        got = None
        ops = [n.op_type for n in model.graph.node]
        if ops == ["ConvInteger"]:
            # Independent check instead: int64 convolution of (x - x_zp) and (w - w_zp[k]).
            x, w = xs[0][1].astype(np.int64), xs[1][1].astype(np.int64)
            xzp = xs[2][1].astype(np.int64) if n_in > 2 else 0
            wzp = xs[3][1].astype(np.int64).reshape(-1, 1, 1, 1) if n_in > 3 else 0
            a = attrs_of(model.graph.node[0])
            a.setdefault("pads", [0, 0, 0, 0])
            # Padding is with x_zero_point, i.e. zero after subtracting it.
            y = Int64Evaluator.conv(x - xzp, w - wzp, a)
            assert np.array_equal(y, ys[0][1]), model_id
            why += " (the shipped output equals an int64 numpy check instead)"
        NODE_ORT_REPORT.append((model_id, "onnxruntime cannot run it: " + why))
    if got is not None:
        for (name, y), g in zip(ys, got):
            assert g.dtype == y.dtype and np.array_equal(g, y), f"{model_id}: onnxruntime != shipped {name}"
        NODE_ORT_REPORT.append((model_id, "onnxruntime agrees"))
    exact, atol, note = True, None, None
    ops = [n.op_type for n in model.graph.node]
    if "DequantizeLinear" in ops:
        # Output is float32 = scale * (q - zp): one f32 multiply of an exactly representable
        # integer, so it is exactly reproducible; check that against the shipped output.
        q = xs[0][1].astype(np.int32)
        scale = xs[1][1].astype(np.float32)
        zp = xs[2][1].astype(np.int32) if len(xs) > 2 else np.zeros_like(scale, np.int32)
        axis = attrs_of(model.graph.node[0]).get("axis", 1)
        if scale.ndim == 1:
            bshape = [1] * q.ndim
            bshape[axis] = -1
            scale, zp = scale.reshape(bshape), zp.reshape(bshape)
        f = np.float32(q - zp).astype(np.float32) * scale
        assert f.dtype == np.float32 and np.array_equal(f, ys[0][1]), model_id
        note = "float32 output is scale*(q-zp) in f32 (one rounding): reproducible bit for bit"
    if "QuantizeLinear" in ops:
        note = "float32 input, integer output: round half to even of x/scale, plus zero point"
    data_in = [xs[0][1]]
    write_cases(model_id, [data_in], [[y for _, y in ys]])
    return entry(
        model_id, model_path, RT_NODE,
        [tensor_entry(xs[0][0], xs[0][1].dtype, xs[0][1].shape)],
        [tensor_entry(n, y.dtype, y.shape) for n, y in ys], 1, exact=exact, atol=atol,
        fold=data if n_in > 1 else None, note=note)


# --------------------------------------------------------------------------------------------


def dump_manifest(manifest):
    """Pretty JSON with each tensor description on one line."""
    text = json.dumps(manifest, indent=2)
    # Collapse {"name", "dtype", "shape"} objects and number lists onto single lines.
    text = re.sub(r"\[\s*([-0-9,\s]*?)\s*\]",
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",") if x.strip()) + "]",
                  text)
    text = re.sub(r"\{\s*(\"name\": [^\n]*),\s*(\"dtype\": [^\n]*),\s*(\"shape\": \[[^\n]*\])\s*\}",
                  r"{\1, \2, \3}", text)
    return text + "\n"


def main():
    models = []
    print("TFLite Micro:")
    for folder in ("mlperf-tiny", "mlperf-tiny-logits"):
        for p in sorted(glob.glob(os.path.join(SHARED, folder, "*.tflite"))):
            mid = f"{folder}/{os.path.splitext(os.path.basename(p))[0]}"
            models.append(golden_tflite(p, mid))

    print(f"onnxruntime {ort.__version__}, made models:")
    made = sorted(p for p in glob.glob(os.path.join(GOLDEN, "models", "*.onnx"))
                  if not os.path.basename(p).startswith("intdialect_"))
    if not made:
        sys.exit("no models in tests/golden/models: run tools/make_models.py first")
    for p in made:
        models.append(golden_made(p, f"generated/{os.path.splitext(os.path.basename(p))[0]}"))
    for p in sorted(glob.glob(os.path.join(ROOT, "examples", "*.onnx"))):
        models.append(golden_made(p, f"examples/{os.path.splitext(os.path.basename(p))[0]}"))

    print("integer ONNX dialect:")
    for p in sorted(glob.glob(os.path.join(SHARED, "match-onnx", "*.onnx"))):
        models.append(golden_integer_dialect(p, f"match-onnx/{os.path.splitext(os.path.basename(p))[0]}"))
    for p in sorted(glob.glob(os.path.join(GOLDEN, "models", "intdialect_*.onnx"))):
        models.append(golden_integer_dialect(p, f"generated/{os.path.splitext(os.path.basename(p))[0]}",
                                             made=True))

    print("ONNX node tests:")
    for d in sorted(glob.glob(os.path.join(SHARED, "onnx-node", "test_*"))):
        models.append(golden_node(d, f"onnx-node/{os.path.basename(d)}"))
    for mid, what in NODE_ORT_REPORT:
        print(f"  {mid}: {what}")

    manifest = {"version": 1, "models": models}
    with open(os.path.join(GOLDEN, "manifest.json"), "w", newline="\n") as f:
        f.write(dump_manifest(manifest))
    print(f"wrote {len(models)} models to {rel(os.path.join(GOLDEN, 'manifest.json'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
