#!/usr/bin/env python3
"""Time per inference of the generated host C against the TFLite Micro
interpreter (reference kernels), same input, on the five MLPerf Tiny models.

Usage (from the repository root, after `cargo build --release -p matchc`):

    python tools/bench_inference.py [--matchc target/release/matchc]
        [--models ../shared/models/mlperf-tiny] [--repeats 5] [--min-time 1.0]
        [--cflags "-std=c99 -O2 ..."] [--keep DIR] [MODEL_STEM ...]

TFLite Micro: `Interpreter.from_file`, the golden input case_0, warm-up, then
N iterations of `set_input` + `invoke` (N grows until one batch takes at least
--min-time seconds); per inference = batch time / N, min over --repeats
batches. The Python call overhead inside that figure is measured separately:
`set_input` alone (Python wrapper, pybind11 conversion, input copy) plus
`reset()` alone, a call through the same Python wrapper and pybind11 path to
a C++ function that does next to nothing on these stateless models (the
dispatch cost `invoke()` also pays). Its share = (set_input + reset) /
(set_input + invoke). `get_output` is reported too but is not in the timed
loop.

Ours: `matchc compile MODEL --target host -o DIR`, `make -C DIR` (the
Makefile's flags unless --cflags), then the binary is run with 1 input set
and with 201 sets (the same input file repeated, outputs to /dev/null);
per inference = (t201 - t1) / 200, min over --repeats pairs. This includes
reading the input file and writing the output of each set (a few kB). The
output of the 1-set run is compared with the golden output (and with TFLite
Micro's).

Prints one table; ratio = TFLM / ours (> 1: ours is faster).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tflite_micro.python.tflite_micro import runtime

ROOT = Path(__file__).resolve().parent.parent
STEMS = ["ad01_int8", "kws_ref_model", "pretrainedResnet_quant", "str_ww_ref_model", "vww_96_int8"]
ARENA = 4 * 1024 * 1024


def per_call(fn, min_time, repeats, warmup=3):
    """Seconds per call of fn(): N calls per batch, N doubled until a batch
    takes >= min_time; min over `repeats` batches. Returns (seconds, N)."""
    for _ in range(warmup):
        fn()
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_time:
            break
        # aim a little past min_time in one step when the estimate is good
        n = max(n * 2, int(n * min_time * 1.2 / max(dt, 1e-9)))
    best = dt / n
    for _ in range(repeats - 1):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best, n


def bench_tflm(model, x, golden, args):
    interp = runtime.Interpreter.from_file(str(model), arena_size=ARENA)
    det = interp.get_input_details(0)
    x = x.reshape(det["shape"])
    interp.set_input(x, 0)
    interp.invoke()
    y = np.array(interp.get_output(0)).reshape(-1)
    ok = np.array_equal(y, golden)

    def step():
        interp.set_input(x, 0)
        interp.invoke()

    t_inf, n = per_call(step, args.min_time, args.repeats)
    # Python overhead, measured apart (shorter batches suffice)
    q = max(args.min_time / 4, 0.1)
    t_set, _ = per_call(lambda: interp.set_input(x, 0), q, args.repeats)
    t_get, _ = per_call(lambda: interp.get_output(0), q, args.repeats)
    t_reset, _ = per_call(interp.reset, q, args.repeats)
    return dict(t=t_inf, n=n, ok=ok, y=y, set=t_set, get=t_get, call=t_reset)


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r


def bench_ours(model, stem, inp, golden, work, args):
    out_dir = work / stem
    run([args.matchc, "compile", str(model), "--target", "host", "-o", str(out_dir)])
    make = ["make", "-s", "-C", str(out_dir)]
    if args.cflags:
        make.append(f"CFLAGS={args.cflags}")
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS")}
    run(make, env=env)
    builds = sorted(p for p in (out_dir / "build").iterdir() if p.is_file() and os.access(p, os.X_OK))
    if len(builds) != 1:
        sys.exit(f"{out_dir}/build: expected one binary, found {[p.name for p in builds]}")
    binary = str(builds[0])
    out = work / f"{stem}.out.bin"
    run([binary, str(inp), str(out)])
    y = np.fromfile(out, dtype=golden.dtype)
    ok = np.array_equal(y, golden)
    one = [binary, str(inp), os.devnull]
    many = [binary] + [str(inp), os.devnull] * 201

    def timed(cmd):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        return time.perf_counter() - t0

    timed(many)  # warm the page cache and the binary
    best = None
    t1s, t201s = [], []
    for _ in range(args.repeats):
        t1s.append(timed(one))
        t201s.append(timed(many))
    # min of each (the noise only ever adds time), then the difference
    best = (min(t201s) - min(t1s)) / 200
    return dict(t=best, ok=ok, y=y, t1=min(t1s), t201=min(t201s))


def fmt_us(s):
    return f"{s * 1e6:10.1f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("stems", nargs="*", help=f"model stems (default: {' '.join(STEMS)})")
    ap.add_argument("--matchc", default=str(ROOT / "target/release/matchc"))
    ap.add_argument("--models", default=str(ROOT / "../shared/models/mlperf-tiny"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=1.0, help="seconds per TFLM batch (>= 1)")
    ap.add_argument("--cflags", default=None, help="CFLAGS for make (default: the Makefile's)")
    ap.add_argument("--keep", default=None, help="emit and build here instead of a temp folder")
    args = ap.parse_args()
    if not Path(args.matchc).is_file():
        sys.exit(f"{args.matchc} not found: cargo build --release -p matchc (or --matchc PATH)")
    models = Path(args.models)
    if not models.is_dir():
        sys.exit(f"{models} not found")

    rows = []
    with tempfile.TemporaryDirectory(prefix="match-bench-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for stem in args.stems or STEMS:
            model = models / f"{stem}.tflite"
            case = ROOT / "tests/golden/mlperf-tiny" / stem / "case_0"
            inp = case / "input_0.bin"
            golden = np.fromfile(case / "output_0.bin", dtype=np.int8)
            x = np.fromfile(inp, dtype=np.int8)
            tf = bench_tflm(model, x, golden, args)
            ours = bench_ours(model, stem, inp, golden, work, args)
            rows.append((stem, tf, ours))
            print(
                f"{stem}: TFLM {tf['t'] * 1e6:.1f} us (N={tf['n']}), ours {ours['t'] * 1e6:.1f} us",
                file=sys.stderr,
            )

    print()
    print(
        f"{'model':<24} {'TFLM us':>10} {'ours us':>10} {'TFLM/ours':>9} | "
        f"{'set_in us':>10} {'reset us':>10} {'get_out us':>10} {'py share':>8} | "
        f"{'ours t1 ms':>10} {'t201 ms':>10} | golden"
    )
    for stem, tf, ours in rows:
        share = (tf["set"] + tf["call"]) / tf["t"]
        check = "TFLM %s, ours %s" % ("ok" if tf["ok"] else "DIFF", "ok" if ours["ok"] else "DIFF")
        print(
            f"{stem:<24} {fmt_us(tf['t'])} {fmt_us(ours['t'])} {tf['t'] / ours['t']:9.2f} | "
            f"{fmt_us(tf['set'])} {fmt_us(tf['call'])} {fmt_us(tf['get'])} {share:8.1%} | "
            f"{ours['t1'] * 1e3:10.2f} {ours['t201'] * 1e3:10.2f} | {check}"
        )
    print(
        "\nTFLM us = set_input + invoke per inference; py share = (set_input + reset) / that,"
        "\nan upper bound of the Python call overhead in the TFLM figure (reset() stands for the"
        "\npybind dispatch of invoke(); set_input includes the input copy). ours us = (t201 - t1) / 200."
    )
    if not all(tf["ok"] and ours["ok"] for _, tf, ours in rows):
        sys.exit("an output differs from the golden")


if __name__ == "__main__":
    main()
