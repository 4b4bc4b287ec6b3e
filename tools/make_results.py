#!/usr/bin/env python3
"""Write docs/results.md: the compiler's estimates for every MLPerf Tiny and match-onnx model on
gap9 and diana, in three configurations each, beside GreenWaves' published GAP9 results and the
MATCH paper's ratios (../shared/DESIGN.md, "Numbers about the seed's chips").

For each model x target x configuration it runs (release build)

    matchc compile MODEL --target T.hwm -o OUT --report R.json

and reads the report's totals (estimated cycles and ms at the target clock), its layers (unit,
MACs, requantization exactness) and memory, and compile's printed summary (weights, C source,
activation arena).

Configurations, made without touching the compiler: a temporary copy of the shipped .hwm with
some units' offload rules removed (a text transform: an `offload ... to UNIT` statement and its
indented continuation lines are dropped when UNIT is not kept), beside a symlink to the shipped
platform folder (a .hwm given by path finds `platform "..."` relative to itself,
docs/new-target.md). Nothing else in the file changes: the removed units still exist but no
layer can be offloaded to them.

  host      no offload rule at all: every layer on the host unit (gap9: fc, diana: cpu)
  cluster   gap9: only the cluster's rules (no NE16)
  digital   diana: only the digital array's rules (no analog core)
  all       the shipped file unchanged: everything the target offers

Only stdlib; no Python dependency. Deterministic: the output depends only on the tree (no
dates, no paths), so a rerun on an unchanged tree gives a byte-identical file.

Usage (from anywhere):  python tools/make_results.py [--matchc PATH] [--check]
  --matchc PATH  use this matchc binary instead of building target/release/matchc
  --check        write nothing; exit 1 if docs/results.md differs from what would be written
"""

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared", "models"))
OUT = os.path.join(ROOT, "docs", "results.md")

# target -> (configuration name, units whose offload rules are kept, label); None keeps all.
CONFIGS = {
    "gap9": [("host", set(), "fabric controller only"),
             ("cluster", {"cluster"}, "cluster only"),
             ("all", None, "cluster + NE16")],
    "diana": [("host", set(), "RISC-V host only"),
              ("digital", {"digital"}, "digital array only"),
              ("all", None, "digital + analog")],
}

# GreenWaves' MLPerf Tiny v1.0 results on GAP9 at 370 MHz, measured with their own toolchain
# (DESIGN.md). Keyed by our model file stem.
GREENWAVES_MS = {
    "pretrainedResnet_quant": ("ResNet-8 (image classification)", 0.616),
    "vww_96_int8": ("MobileNetV1 (visual wake words)", 1.125),
    "kws_ref_model": ("DS-CNN (keyword spotting)", 0.476),
    "ad01_int8": ("Deep AutoEncoder (anomaly detection)", 0.176),
}


def rel(path):
    return os.path.relpath(path, ROOT).replace(os.sep, "/")


def models():
    """(group, display path, absolute path) of every model in the tables."""
    out = []
    for p in sorted(glob.glob(os.path.join(SHARED, "mlperf-tiny", "*.tflite"))):
        out.append(("MLPerf Tiny", "mlperf-tiny/" + os.path.basename(p), p))
    for p in sorted(glob.glob(os.path.join(SHARED, "match-onnx", "*.onnx"))):
        out.append(("match-onnx", "match-onnx/" + os.path.basename(p), p))
    ternary = os.path.join(ROOT, "tests", "golden", "models", "intdialect_ternary.onnx")
    if os.path.exists(ternary):
        out.append(("project", rel(ternary), ternary))
    return out


# --------------------------------------------------------------------------------------------
# .hwm text transform
# --------------------------------------------------------------------------------------------

OFFLOAD = re.compile(r"^(\s*)offload\s+\w+\s+to\s+(\w+)\b")


def restrict(text, keep):
    """The .hwm text without the offload statements of units not in `keep` (None: unchanged).

    An offload statement is a line `offload PATTERN to UNIT ...` and the lines after it that are
    indented deeper than it (its `where`, `call`, `weight_layout`, `cycles` continuations), as
    the shipped files and `matchc fmt` lay them out. Comments and blank lines end a statement.
    """
    if keep is None:
        return text
    out, dropping, indent = [], False, 0
    for line in text.splitlines(keepends=True):
        m = OFFLOAD.match(line)
        if m:
            indent = len(m.group(1))
            dropping = m.group(2) not in keep
            if dropping:
                continue
        elif dropping:
            stripped = line.strip()
            deeper = len(line) - len(line.lstrip()) > indent
            if stripped and not stripped.startswith("//") and deeper:
                continue
            dropping = False
        out.append(line)
    return "".join(out)


def hwm_facts(text):
    """(clock in MHz, host unit name, platform folder) of a .hwm text."""
    clock = re.search(r"^\s*clock\s+([0-9.]+)\s*MHz", text, re.M)
    platform = re.search(r'^\s*platform\s+"([^"]+)"', text, re.M)
    host = None
    for m in re.finditer(r"^\s*unit\s+(\w+)\s*\{(.*?)^\s*\}", text, re.M | re.S):
        if re.search(r"^\s*host\b", m.group(2), re.M):
            host = m.group(1)
    assert clock and platform and host, "clock, platform and a host unit expected"
    return float(clock.group(1)), host, platform.group(1)


# --------------------------------------------------------------------------------------------
# compile and read
# --------------------------------------------------------------------------------------------

RV32_GCC = "riscv64-unknown-elf-gcc"
RV32_FLAGS = ["-march=rv32imc", "-mabi=ilp32", "-Os", "-ffreestanding", "-std=c99",
              "-ffunction-sections", "-fdata-sections"]


def code_size(project, platform_dir):
    """Bytes of .text of the generated inference code for a 32-bit RISC-V MCU core (the GAP9
    fabric controller and DIANA's host are RV32): the project's C files except main.c, the
    weights and the files copied from the platform folder (host emulation), compiled with
    riscv64-unknown-elf-gcc -march=rv32imc -Os and partially linked with --gc-sections from
    the model's `<name>_run` (so only the kernels it calls count). None without the cross
    compiler or when the project does not build freestanding."""
    platform_files = set(os.listdir(platform_dir)) if os.path.isdir(platform_dir) else set()
    sources = sorted(f for f in os.listdir(project) if f.endswith(".c") and f != "main.c"
                     and not f.endswith("_weights.c") and f not in platform_files)
    entry = None
    for h in os.listdir(project):
        if h.endswith(".h") and h not in platform_files:
            with open(os.path.join(project, h)) as f:
                m = re.search(r"\bint\s+(\w+_run)\s*\(", f.read())
            entry = entry or (m and m.group(1))
    if not sources or not entry:
        return None
    try:
        objs = []
        for src in sources:
            obj = os.path.join(project, src + ".rv32.o")
            subprocess.run([RV32_GCC, *RV32_FLAGS, "-I", project, "-c",
                            os.path.join(project, src), "-o", obj],
                           check=True, capture_output=True)
            objs.append(obj)
        linked = os.path.join(project, "code.rv32.o")
        subprocess.run([RV32_GCC, *RV32_FLAGS, "-nostdlib", "-r", "-Wl,--gc-sections",
                        f"-Wl,-u,{entry}", *objs, "-o", linked], check=True, capture_output=True)
        out = subprocess.run(["riscv64-unknown-elf-size", "-A", linked], check=True,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return sum(int(m.group(1)) for m in re.finditer(r"^\.text\S*\s+(\d+)", out, re.M))


def compile_one(matchc, model, hwm, platform_dir, work):
    """Report dict, printed summary numbers; or an error string."""
    out_dir = os.path.join(work, "project")
    report = os.path.join(work, "report.json")
    r = subprocess.run([matchc, "compile", model, "--target", hwm, "-o", out_dir,
                        "--report", report], capture_output=True, text=True)
    if r.returncode != 0:
        lines = [x for x in (r.stderr or r.stdout).strip().splitlines() if x.strip()]
        msg = lines[-1] if lines else f"exit {r.returncode}"
        # Paths mean nothing in the document: the model's is the row, the temporary folder's
        # is ours.
        msg = msg.replace(model + ": ", "").replace(model, "MODEL").replace(work, "OUT")
        msg = msg.replace(os.path.dirname(hwm) + "/", "")
        if len(msg) > 200:  # e.g. TFLite node names: keep the start and the verdict at the end
            msg = msg[:90] + " [...] " + msg[-100:]
        return msg
    summary = {}
    for key, pat in (("code", r"code:\s+(\d+) B"), ("weights", r"weights:\s+(\d+) B"),
                     ("ram", r"RAM:\s+(\d+) B")):
        m = re.search(pat, r.stdout)
        summary[key] = int(m.group(1)) if m else None
    with open(report) as f:
        rep = json.load(f)
    summary["text"] = code_size(out_dir, platform_dir)
    return rep, summary


def measure(rep, summary, host, keep):
    layers = rep["layers"]
    units = {layer["unit"] for layer in layers}
    if keep is not None:
        stray = units - keep - {host}
        assert not stray, f"layers on removed units {stray}: the transform did not apply"
    off = [layer for layer in layers if layer["unit"] != host]
    macs = sum(layer["macs"] for layer in layers)
    off_macs = sum(layer["macs"] for layer in off)
    per_unit = {}
    for layer in layers:
        n, m = per_unit.get(layer["unit"], (0, 0))
        per_unit[layer["unit"]] = (n + 1, m + layer["macs"])
    kinds = [(layer.get("exactness") or {}).get("kind") for layer in layers]
    converted = [layer for layer, k in zip(layers, kinds) if k == "converted"]
    moved = sum(1 for k in kinds if k == "moved")
    max_lsb = max((layer["exactness"].get("max_lsb") or 0 for layer in converted), default=0)
    return {
        "cycles": rep["totals"]["cycles"],
        "ms": rep["totals"]["ms"],
        "layers": len(layers),
        "off_layers": len(off),
        "macs": macs,
        "off_macs": off_macs,
        "per_unit": per_unit,
        "has_exactness": any(k is not None for k in kinds),
        "converted": len(converted),
        "moved": moved,
        "max_lsb": max_lsb,
        "memory": rep.get("memory", {}),
        **summary,
    }


def run_all(matchc):
    results = {}  # (model display, target, config) -> dict or error string
    facts = {}
    with tempfile.TemporaryDirectory(prefix="match-results-") as tmp:
        for target, configs in CONFIGS.items():
            shipped = os.path.join(ROOT, "targets", f"{target}.hwm")
            with open(shipped) as f:
                text = f.read()
            clock, host, platform = hwm_facts(text)
            facts[target] = (clock, host)
            os.symlink(os.path.join(ROOT, "targets", platform), os.path.join(tmp, platform))
            for config, keep, _ in configs:
                hwm = os.path.join(tmp, f"{target}-{config}.hwm")
                with open(hwm, "w") as f:
                    f.write(restrict(text, keep))
                for _, shown, path in models():
                    work = os.path.join(tmp, "work", target, config, os.path.basename(path))
                    os.makedirs(work)
                    got = compile_one(matchc, path, hwm, os.path.join(tmp, platform), work)
                    if isinstance(got, tuple):
                        got = measure(*got, host, keep)
                    results[(shown, target, config)] = got
                    print(f"  {target:5} {config:7} {shown}: "
                          + (f"{got['cycles']:.0f} cycles" if isinstance(got, dict) else got),
                          file=sys.stderr)
    return results, facts


# --------------------------------------------------------------------------------------------
# document
# --------------------------------------------------------------------------------------------

def pct(a, b):
    return f"{100.0 * a / b:.0f} %" if b else "-"


def kb(n):
    return "-" if n is None else f"{n / 1000:.1f}"


def fmt_ms(ms):
    return f"{ms:.3f}" if ms >= 0.001 else f"{ms:.2g}"


def target_table(target, results, facts):
    clock, host = facts[target]
    lines = [
        f"| model | configuration | est. cycles | est. ms @ {clock:g} MHz | layers offloaded "
        "| MACs offloaded | converted requant. (max LSB) | activation arena kB | memory kB "
        "(report) | weights kB | code kB (rv32) | C source kB |",
        "|---|---|---:|---:|---:|---:|---|---:|---|---:|---:|---:|",
    ]
    for _, shown, _ in models():
        for config, _, label in CONFIGS[target]:
            r = results[(shown, target, config)]
            name = shown.split("/")[-1]
            if not isinstance(r, dict):
                lines.append(f"| {name} | {label} | does not compile: {r.replace('|', '/')} "
                             "| | | | | | | | | |")
                continue
            conv = "n/a (no exactness in report)"
            if r["has_exactness"]:
                conv = f"{r['converted']} of {r['layers']}"
                if r["converted"]:
                    conv += f" ({r['max_lsb']})"
                if r["moved"]:
                    conv += f", {r['moved']} moved"
            mem = ", ".join(f"{k} {kb(v)}" for k, v in sorted(r["memory"].items()))
            units = ", ".join(f"{u} {n}" for u, (n, _) in sorted(r["per_unit"].items()))
            lines.append(
                f"| {name} | {label} | {r['cycles']:,.0f} | {fmt_ms(r['ms'])} "
                f"| {r['off_layers']}/{r['layers']} ({units}) | {pct(r['off_macs'], r['macs'])} "
                f"| {conv} | {kb(r['ram'])} | {mem} | {kb(r['weights'])} | {kb(r['text'])} "
                f"| {kb(r['code'])} |")
    return "\n".join(lines)


def speedup(results, shown, target, slow, fast):
    a, b = results[(shown, target, slow)], results[(shown, target, fast)]
    if isinstance(a, dict) and isinstance(b, dict) and b["cycles"] > 0:
        return a["cycles"] / b["cycles"]
    return None


def fmt_x(x):
    return "-" if x is None else f"{x:.2f}x"


def calibration(results):
    lines = [
        "| MLPerf Tiny model | GreenWaves, measured (ms) | ours, estimated, cluster + NE16 (ms) "
        "| estimate / measured |",
        "|---|---:|---:|---:|",
    ]
    for stem, (label, ms) in GREENWAVES_MS.items():
        shown = next((s for _, s, p in models()
                      if os.path.splitext(os.path.basename(p))[0] == stem), None)
        r = results.get((shown, "gap9", "all")) if shown else None
        if isinstance(r, dict):
            lines.append(f"| {label} (`{stem}`) | {ms:.3f} | {fmt_ms(r['ms'])} "
                         f"| {r['ms'] / ms:.2f} |")
        else:
            lines.append(f"| {label} (`{stem}`) | {ms:.3f} | - | - |")
    return "\n".join(lines)


def ratios(results):
    lines = [
        "| model | gap9: host / all | gap9: cluster / all | diana: host / all "
        "| diana: digital / all |",
        "|---|---:|---:|---:|---:|",
    ]
    best = {}  # over the paper's four MLPerf Tiny models only
    for _, shown, path in models():
        row = []
        four = os.path.splitext(os.path.basename(path))[0] in GREENWAVES_MS
        for target, slow in (("gap9", "host"), ("gap9", "cluster"), ("diana", "host"),
                             ("diana", "digital")):
            x = speedup(results, shown, target, slow, "all")
            if x is not None and four:
                best[(target, slow)] = max(best.get((target, slow), 0.0), x)
            row.append(fmt_x(x))
        lines.append(f"| {shown.split('/')[-1]} | " + " | ".join(row) + " |")
    return "\n".join(lines), best


HEADER = """\
# Results (estimated)

<!-- Generated by tools/make_results.py: do not edit by hand. -->

This page is generated by `python tools/make_results.py` (from the repository root; it builds
`cargo build --release -p matchc` and compiles every model below). It is regenerated by hand,
not in CI, whenever the numbers change: after a change to the cost model or the schedule search
(match-core `cost/`, `schedule.rs`, `mapping.rs`), to the requantization conversion, to a
shipped target's `.hwm`, or to the models. `python tools/make_results.py --check` says whether
this page is current; `cargo test -p match-tests --test results` checks a few of its rows.

**Every cycle count and time below is an estimate** of the cost model stated in the target's
`.hwm` file (per layer: compute, DMA transfers, call overhead and stalls of the chosen schedule;
see `matchc compile --explain`), not a measurement. The generated code runs in host emulation
only; nothing here has run on silicon. The comparison with GreenWaves' measured results is a
**calibration figure** of the cost model, not a benchmark of the compiler.
"""


def document(results, facts):
    gap9_clock, gap9_host = facts["gap9"]
    diana_clock, diana_host = facts["diana"]
    ratio_table, best = ratios(results)
    any_exactness = any(isinstance(r, dict) and r["has_exactness"] for r in results.values())
    parts = [HEADER]
    parts.append(f"""\
## How the configurations are made

Three configurations per target, from the shipped `targets/<target>.hwm` without any change to
the compiler: `tools/make_results.py` writes a temporary copy of the file with the offload
rules (`offload PATTERN to UNIT ...` and its indented continuation lines) of the other units
removed, next to a symlink to the shipped platform folder, and compiles with
`matchc compile MODEL --target /tmp/.../<target>-<configuration>.hwm -o OUT --report R.json`.
The script checks in each report that no layer landed on a removed unit.

| target | clock | host unit | configurations |
|---|---|---|---|
| gap9 | {gap9_clock:g} MHz | `{gap9_host}` (fabric controller) | fabric controller only; cluster only (NE16 rules removed); cluster + NE16 (shipped file) |
| diana | {diana_clock:g} MHz | `{diana_host}` (RISC-V) | RISC-V host only; digital array only (analog rules removed); digital + analog (shipped file) |

Columns:

- **est. cycles, est. ms**: the report's `totals` (estimated cycles, and ms at the target's
  clock from its `.hwm`).
- **layers offloaded**: layers not on the host unit, of all layers; in brackets the layers per
  unit. **MACs offloaded**: the share of the model's MACs in those layers.
- **converted requant. (max LSB)**: layers whose requantization was converted into their unit's
  form (report `exactness.kind == "converted"`), of all layers, and the largest bound in LSBs;
  "moved" counts layers moved to an exact unit (only with `--exact`, not used here).
- **activation arena kB**: the activation arena printed by `matchc compile` (RAM).
  **memory kB (report)**: the report's `memory` (bytes per memory of the target).
- **weights kB**: constant weight bytes (printed by `matchc compile`).
- **code kB (rv32)**: `.text` bytes of the generated inference code for a 32-bit RISC-V core
  (the GAP9 fabric controller and DIANA's host are RV32): the project's C files except
  `main.c`, the weights and the platform folder's files, built with
  `riscv64-unknown-elf-gcc -march=rv32imc -Os` and partially linked with `--gc-sections` from
  the model's `<name>_run`, so only the kernels it calls count; without the platform layer
  (the device adapter or host emulation). "-" where the cross compiler is missing or the code
  does not build freestanding. **C source kB**: size of the generated C source (printed by
  `matchc compile`).

kB = 1000 B.
""")
    if not any_exactness:
        parts.append("The reports of this tree carry no `exactness`; the converted column is "
                     "empty.\n")
    parts.append("## GAP9 (estimated)\n")
    parts.append(target_table("gap9", results, facts) + "\n")
    parts.append("## DIANA (estimated)\n")
    parts.append(target_table("diana", results, facts) + "\n")
    ternary = next((shown for group, shown, _ in models() if group == "project"), None)
    r = results.get((ternary, "diana", "all")) if ternary else None
    if isinstance(r, dict):
        analog = r["per_unit"].get("analog", (0, 0))
        parts.append(f"""\
`intdialect_ternary` is the project's own model with ternary weights for DIANA's analog core
(`tools/make_models.py`, golden vectors in `tests/golden/generated/intdialect_ternary`).
With every unit, the analog core runs {analog[0]} of its {r['layers']} layers
({pct(analog[1], r['macs'])} of its MACs).
""")
    parts.append("""\
## Calibration against GreenWaves' GAP9 results

GreenWaves' MLPerf Tiny v1.0 results on GAP9 at 370 MHz, measured with their own toolchain
(../shared/DESIGN.md), beside our **estimate** for the same reference model with every unit
(cluster + NE16). A calibration figure of the cost model: their numbers are measured end-to-end
on silicon with hand-tuned kernels, ours are the cost model's estimate of our schedule.
""")
    parts.append(calibration(results) + "\n")
    parts.append(f"""\
## Beside the MATCH paper's ratios

The MATCH paper (arXiv 2410.08855; ../shared/DESIGN.md) reports, over the four MLPerf Tiny
models: up to **60.88x** faster than plain TVM on DIANA, **16.94 %** faster than HTVM (DIANA's
own toolchain), and **2.15x** faster than DORY on GAP9 (by using NE16 and the 8-core cluster
together). The nearest ratios in our **estimates** are speedups of "everything the target
offers" over a restricted configuration. They are analogues, not the same experiments: plain
TVM is not exactly "host only", and DORY's GAP9 baseline is not exactly "cluster only"; we have
no analogue of HTVM.

{ratio_table}

Largest estimated speedups over the paper's four models (ResNet-8, MobileNetV1 VWW, DS-CNN
KWS, Deep AutoEncoder; the MLPerf Tiny reference files): diana host / all
{fmt_x(best.get(("diana", "host")))} (paper: up to 60.88x over plain TVM); gap9 cluster / all
{fmt_x(best.get(("gap9", "cluster")))} (paper: 2.15x over DORY); gap9 host / all
{fmt_x(best.get(("gap9", "host")))}; diana digital / all {fmt_x(best.get(("diana", "digital")))}.
""")
    return "\n".join(parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--matchc", help="matchc binary (default: build target/release/matchc)")
    ap.add_argument("--check", action="store_true", help="exit 1 if docs/results.md is stale")
    args = ap.parse_args()
    if not os.path.isdir(SHARED):
        sys.exit(f"{SHARED} not found: the MLPerf Tiny and match-onnx models are needed")
    matchc = args.matchc
    if matchc is None:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "matchc"], cwd=ROOT,
                       check=True)
        target_dir = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
        matchc = os.path.join(target_dir, "release", "matchc")
    results, facts = run_all(os.path.abspath(matchc))
    text = document(results, facts)
    if args.check:
        with open(OUT) as f:
            current = f.read()
        if current != text:
            print(f"{rel(OUT)} is stale: run python tools/make_results.py", file=sys.stderr)
            return 1
        print(f"{rel(OUT)} is current")
        return 0
    with open(OUT, "w", newline="\n") as f:
        f.write(text)
    print(f"wrote {rel(OUT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
