"""TFLite Micro's smallest working arena for each MLPerf Tiny model.

For every `.tflite` in ../shared/models/mlperf-tiny (or the paths given on
the command line), bisects `arena_size` for the smallest N with which
`Interpreter.from_file(path, arena_size=N)` succeeds and one `invoke()` on a
zero input succeeds too (N - 1 fails). At a generous arena it also records
the RecordingMicroAllocator's split of that arena: the "head" (TFLM's
non-persistent memory plan: activations and kernel scratch buffers) and the
"tail" (persistent bookkeeping: eval tensors, node structs, quantization
data, kernels' persistent buffers).

Writes tools/tflm_arena.json, which `cargo bench -p match-core --bench
planner` reads as an anchor for the planner's arena (the TFLM figure also
holds TFLM's bookkeeping, so it is no pass mark).

Run from the repository root: `python tools/tflm_arena.py` (about a minute).
Deterministic: the same tflite-micro version gives the same file.
"""

import json
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
from tflite_micro.python.tflite_micro import runtime
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / ".." / "shared" / "models" / "mlperf-tiny"
OUT = ROOT / "tools" / "tflm_arena.json"
HI = 4 * 1024 * 1024


class CaptureFd:
    """Redirects a C-level file descriptor (TFLM's MicroPrintf) to a file."""

    def __init__(self, fd):
        self.fd = fd
        self.text = ""

    def __enter__(self):
        sys.stdout.flush()
        sys.stderr.flush()
        self.tmp = tempfile.TemporaryFile(mode="w+b")
        self.saved = os.dup(self.fd)
        os.dup2(self.tmp.fileno(), self.fd)
        return self

    def __exit__(self, *exc):
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self.saved, self.fd)
        os.close(self.saved)
        self.tmp.seek(0)
        self.text = self.tmp.read().decode("utf-8", "replace")
        self.tmp.close()
        return False


def input_count(data):
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    return len(model.subgraphs[0].inputs)


def works(path, n_inputs, arena_size):
    """True if creating the interpreter and one invoke succeed."""
    with CaptureFd(1), CaptureFd(2):
        try:
            interp = runtime.Interpreter.from_file(str(path), arena_size=arena_size)
            for i in range(n_inputs):
                d = interp.get_input_details(i)
                interp.set_input(np.zeros(d["shape"], dtype=d["dtype"]), i)
            interp.invoke()
            return True
        except (RuntimeError, ValueError):
            return False


def allocations(path, n_inputs):
    """The RecordingMicroAllocator's head/tail/total at a generous arena."""
    with CaptureFd(1) as out1, CaptureFd(2) as out2:
        interp = runtime.Interpreter.from_file(str(path), arena_size=HI)
        for i in range(n_inputs):
            d = interp.get_input_details(i)
            interp.set_input(np.zeros(d["shape"], dtype=d["dtype"]), i)
        interp.invoke()
        interp.print_allocations()
    text = out1.text + out2.text
    found = {}
    for key in ("total", "head", "tail"):
        m = re.search(rf"Arena allocation {key} (\d+) bytes", text)
        assert m, f"{path.name}: no '{key}' in print_allocations():\n{text}"
        found[key] = int(m.group(1))
    return found


def smallest_arena(path, n_inputs):
    lo, hi = 0, HI  # invariant: lo fails (0 always does), hi works
    assert works(path, n_inputs, hi), f"{path.name}: does not run in {hi} bytes"
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if works(path, n_inputs, mid):
            hi = mid
        else:
            lo = mid
    return hi


def main():
    paths = [Path(p) for p in sys.argv[1:]] or sorted(MODELS.glob("*.tflite"))
    result = {
        "runtime": f"tflite-micro {version()}",
        "method": "smallest arena_size (bytes) with which Interpreter.from_file and one invoke() "
        "on a zero input succeed (arena_size - 1 fails); head/tail/total: "
        "print_allocations() at a 4 MiB arena (head = TFLM's non-persistent plan: "
        "activations and scratch; tail = persistent bookkeeping)",
        "models": {},
    }
    for path in paths:
        data = path.read_bytes()
        n_inputs = input_count(data)
        n = smallest_arena(path, n_inputs)
        alloc = allocations(path, n_inputs)
        result["models"][path.stem] = {"arena_min": n, **alloc}
        print(f"{path.stem:<28} min {n:>8}  head {alloc['head']:>8}  tail {alloc['tail']:>6}  total {alloc['total']:>8}")
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")


def version():
    from importlib.metadata import version as v

    return v("tflite-micro")


if __name__ == "__main__":
    main()
