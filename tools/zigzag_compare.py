#!/usr/bin/env python3
"""Compare match's cost model and schedule search with ZigZag (docs/zigzag.md).

    pip install -r tools/requirements-zigzag.txt     # zigzag-dse 3.9.1, optional
    python tools/zigzag_compare.py [--models DIR] [--json OUT.json]

1. Writes one accelerator twice (tools/zigzag/describe.py): a `.hwm` for
   match and ZigZag's accelerator YAML (a 16 x 16 K x OX MAC array computing
   from one on-chip L1, fed from L2 by one 8 B/cycle DMA).
2. Runs match's `zigzag_layers` bench on the five MLPerf Tiny models: it
   maps each model on the `.hwm` and times the schedule search of every
   layer alone (release build). Cross-checks its estimates against
   `matchc compile --report` on the same `.hwm`.
3. Describes every distinct conv / depthwise / dense shape as a ZigZag
   workload and runs ZigZag (`zigzag.api.get_hardware_performance_zigzag`,
   LOMA temporal search, latency objective) on it, timed.
4. Prints per shape: ZigZag's latency and search time, ours, and the ratios,
   with ZigZag's latency split (compute with its spatial utilization,
   stall, on-loading, off-loading) beside ours (compute, transfer, stall).

Not run in CI: ZigZag is an optional dependency. Exits 2 with a message
when it is not installed, 1 when a step fails.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TOOLS = Path(__file__).resolve().parent
ROOT = TOOLS.parent
# tools/zigzag/ holds our descriptions; keep it from shadowing the pip package.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != TOOLS]


def load_describe():
    sys.dont_write_bytecode = True  # no __pycache__ in tools/zigzag/
    spec = importlib.util.spec_from_file_location("zigzag_describe", TOOLS / "zigzag" / "describe.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["zigzag_describe"] = mod
    spec.loader.exec_module(mod)
    return mod


def require_zigzag():
    try:
        import yaml  # noqa: F401
        from zigzag.api import get_hardware_performance_zigzag  # noqa: F401
    except ImportError as e:
        print(
            f"zigzag_compare: ZigZag is not installed ({e}). It is optional; to run this comparison:\n"
            "  python3 -m venv /tmp/zz && /tmp/zz/bin/pip install -r tools/requirements-zigzag.txt\n"
            "  /tmp/zz/bin/python tools/zigzag_compare.py",
            file=sys.stderr,
        )
        sys.exit(2)


def fail(msg: str) -> None:
    print(f"zigzag_compare: {msg}", file=sys.stderr)
    sys.exit(1)


def run(cmd: list[str], env: dict[str, str] | None = None) -> str:
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"`{' '.join(cmd)}` failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r.stdout


SHAPE_KEYS = (
    "op n k c oy ox iy ix fy fx sy sx dy dx pad_top pad_bottom pad_left pad_right groups in_bits w_bits out_bits"
).split()


def shape_key(layer: dict[str, Any]) -> tuple:
    return tuple(layer[k] for k in SHAPE_KEYS)


def describe_shape(layer: dict[str, Any], depthwise: bool) -> str:
    if layer["op"] == "Dense":
        return f"dense {layer['c']}->{layer['k']}"
    kind = "dw" if depthwise else "conv"
    ch = f"{layer['k']}" if depthwise else f"{layer['c']}->{layer['k']}"
    s = f"/{layer['sy']}" if layer["sy"] > 1 or layer["sx"] > 1 else ""
    return f"{kind} {ch} {layer['oy']}x{layer['ox']} {layer['fy']}x{layer['fx']}{s}"


def our_layers(hwm: Path, models: list[Path], out: Path) -> list[dict[str, Any]]:
    env = dict(os.environ, ZIGZAG_HWM=str(hwm), ZIGZAG_MODELS=":".join(map(str, models)), ZIGZAG_OUT=str(out))
    run(["cargo", "bench", "-q", "-p", "match-core", "--bench", "zigzag_layers"], env=env)
    return json.loads(out.read_text())


def cross_check(hwm: Path, models: list[Path], rows: list[dict[str, Any]], tmp: Path) -> int:
    """`matchc compile --report` on the same .hwm gives the bench's cycles per layer (except
    layers inter-layer residency linked, which the report marks: their schedules are the
    whole-model pass's, not the single-layer search's)."""
    run(["cargo", "build", "--release", "-q", "-p", "matchc"])
    matchc = ROOT / "target" / "release" / "matchc"
    checked = 0
    for m in models:
        report = tmp / f"{m.stem}.report.json"
        run([str(matchc), "compile", str(m), "--target", str(hwm), "-o", str(tmp / m.stem), "--report", str(report)])
        by_name = {layer["name"]: layer for layer in json.loads(report.read_text())["layers"]}
        for r in rows:
            if r["model"] != str(m):
                continue
            rep = by_name.get(r["name"])
            if rep is None:
                fail(f"{m.name}: layer {r['name']} is missing from the --report JSON")
            tiles = rep.get("tiles") or {}
            if "input_resident_from" in tiles or "output_kept_for" in tiles:
                # Inter-layer residency (a whole-model pass) changed this
                # layer's schedule; the bench and ZigZag cost it alone.
                continue
            if abs(rep["cycles"]["total"] - r["cycles"]["total"]) > 1e-6 * max(1.0, r["cycles"]["total"]):
                fail(f"{m.name} {r['name']}: report {rep['cycles']['total']} != bench {r['cycles']['total']}")
            checked += 1
    return checked


def zigzag_layer(d, hw, layer: dict[str, Any], name: str, acc_yaml: Path, tmp: Path, lpf: int) -> dict[str, Any]:
    import yaml
    from zigzag.api import get_hardware_performance_zigzag

    map_yaml = tmp / f"{name}.mapping.yaml"
    map_yaml.write_text(yaml.safe_dump(d.mapping(layer, hw), sort_keys=False))
    t0 = time.perf_counter()
    _, latency, cmes = get_hardware_performance_zigzag(
        d.workload(layer, name),
        str(acc_yaml),
        str(map_yaml),
        opt="latency",
        dump_folder=str(tmp / f"out-{name}"),
        lpf_limit=lpf,
        loma_show_progress_bar=False,
    )
    seconds = time.perf_counter() - t0
    cme = cmes[0][1][0][0]  # the layer's own evaluation (cmes[0][0] sums the layers)
    return {
        "latency": float(latency),
        "seconds": seconds,
        "ideal_cycle": float(cme.ideal_cycle),
        "compute": float(cme.ideal_temporal_cycle),
        "stall": float(cme.stall_slack_comb),
        "onloading": float(cme.data_onloading_cycle),
        "offloading": float(cme.data_offloading_cycle),
        "spatial_utilization": float(cme.ideal_cycle / cme.ideal_temporal_cycle),
        "temporal_mapping": str(cme.temporal_mapping),
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def markdown(results: list[dict[str, Any]]) -> str:
    """The table of docs/zigzag.md."""
    out = [
        "| # | shape (K x OX array) | n | ZigZag cycles | ZigZag s | our cycles | our ms | ZigZag / ours | speed |"
        " ZigZag util, compute + stall + on + off | ours compute + transfer + stall |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for i, r in enumerate(results):
        z, o = r["zigzag"], r["ours"]
        c = o["cycles"]
        out.append(
            f"| {i} | {r['shape']} | {len(r['occurrences'])} | {z['latency']:.0f} | {z['seconds']:.2f} | "
            f"{c['total']:.0f} | {o['search_seconds'] * 1e3:.2f} | {r['estimate_ratio']:.3f} | "
            f"{r['speed_ratio']:.0f}x | {z['spatial_utilization']:.2f}, {z['compute']:.0f} + {z['stall']:.0f} + "
            f"{z['onloading']:.0f} + {z['offloading']:.0f} | {c['compute']:.0f} + {c['transfer']:.0f} + "
            f"{c['stall']:.0f} |"
        )
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, default=ROOT.parent / "shared" / "models" / "mlperf-tiny")
    ap.add_argument("--json", type=Path, help="write every figure to this file")
    ap.add_argument("--markdown", type=Path, help="write the table as Markdown (for docs/zigzag.md)")
    ap.add_argument("--lpf-limit", type=int, default=6, help="ZigZag LOMA's loop prime factor limit (its default: 6)")
    ap.add_argument("--limit", type=int, default=0, help="compare only the first N distinct shapes (0: all)")
    ap.add_argument("--l1-bytes", type=int, default=64 * 1024, help="on-chip L1 size (default 65536)")
    ap.add_argument("--dma", type=int, default=8, help="L2 <-> L1 bandwidth, B/cycle (default 8)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (the .hwm, YAML, ZigZag's outputs)")
    ap.add_argument("--no-cross-check", action="store_true", help="skip the matchc compile --report check")
    args = ap.parse_args()

    require_zigzag()
    d = load_describe()
    import yaml

    models = sorted(args.models.glob("*.tflite"))
    if not models:
        fail(f"no .tflite models in {args.models}")
    hw = d.Hardware(l1_bytes=args.l1_bytes, dma_bytes_per_cycle=args.dma)
    tmp = Path(tempfile.mkdtemp(prefix="zigzag-compare-"))
    hwm = tmp / "zigzag_cmp.hwm"
    hwm.write_text(d.hwm_text(hw))
    acc_yaml = tmp / "accelerator.yaml"
    acc_yaml.write_text(yaml.safe_dump(d.accelerator(hw), sort_keys=False))
    print(f"hardware: {hw}\nfiles: {tmp} (removed at the end unless --keep)", flush=True)

    rows = our_layers(hwm, models, tmp / "ours.json")
    if not args.no_cross_check:
        print(f"cross-check: {cross_check(hwm, models, rows, tmp)} layers, bench == matchc --report", flush=True)
    acc_rows = [r for r in rows if r["unit"] == "acc"]
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in acc_rows:
        groups.setdefault(shape_key(r["layer"]), []).append(r)
    shapes = list(groups.values())
    if args.limit:
        shapes = shapes[: args.limit]
    print(f"{len(acc_rows)} conv/dense layers on the array, {len(groups)} distinct shapes", flush=True)

    logging.disable(logging.WARNING)  # ZigZag logs every stage at INFO
    results = []
    hdr = (
        f"{'#':>2} {'shape':<26} {'n':>2} {'zz cycles':>10} {'zz s':>6} {'our cycles':>10} {'our ms':>7} "
        f"{'zz/ours':>7} {'speed':>7}  zz: util comp+stall+on+off | ours: comp+xfer+stall"
    )
    print(hdr)
    for i, occ in enumerate(shapes):
        first = occ[0]
        layer = first["layer"]
        dw = d.is_depthwise(layer)
        z = zigzag_layer(d, hw, layer, f"s{i:02}", acc_yaml, tmp, args.lpf_limit)
        ours_s = statistics.median(r["search_seconds"] for r in occ)
        c = first["cycles"]
        res = {
            "shape": describe_shape(layer, dw),
            "layer": layer,
            "occurrences": [f"{Path(r['model']).stem}:{r['name']}" for r in occ],
            "macs": first["macs"],
            "zigzag": z,
            "ours": {
                "cycles": c,
                "tile": first["tile"],
                "order": first["order"],
                "buffering": first["buffering"],
                "calls": first["calls"],
                "bound_cycles": first["bound_cycles"],
                "search_seconds": ours_s,
            },
            "estimate_ratio": z["latency"] / c["total"],
            "speed_ratio": z["seconds"] / ours_s,
        }
        results.append(res)
        print(
            f"{i:>2} {res['shape']:<26} {len(occ):>2} {z['latency']:>10.0f} {z['seconds']:>6.2f} {c['total']:>10.0f} "
            f"{ours_s * 1e3:>7.2f} {res['estimate_ratio']:>7.3f} {res['speed_ratio']:>7.0f}  "
            f"{z['spatial_utilization']:.2f} {z['compute']:.0f}+{z['stall']:.0f}+{z['onloading']:.0f}+{z['offloading']:.0f}"
            f" | {c['compute']:.0f}+{c['transfer']:.0f}+{c['stall']:.0f}",
            flush=True,
        )

    within = [r for r in results if abs(r["estimate_ratio"] - 1) <= 0.10]
    speed = [r["speed_ratio"] for r in results]
    print(
        f"\nestimates within +-10%: {len(within)} of {len(results)}; "
        f"zz/ours geometric mean {statistics.geometric_mean([r['estimate_ratio'] for r in results]):.3f}"
    )
    print(
        f"speed (ZigZag time / our time per layer): min {min(speed):.0f}x, "
        f"median {statistics.median(speed):.0f}x, geometric mean {statistics.geometric_mean(speed):.0f}x"
    )
    print(
        f"per layer: ZigZag median {statistics.median(r['zigzag']['seconds'] for r in results):.2f} s, "
        f"ours median {statistics.median(r['ours']['search_seconds'] for r in results) * 1e3:.2f} ms"
    )
    if args.markdown:
        args.markdown.write_text(markdown(results))
        print(f"wrote {args.markdown}")
    if args.json:
        meta = {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()}",
            "python": platform.python_version(),
            "hardware": hw.__dict__,
            "lpf_limit": args.lpf_limit,
        }
        args.json.write_text(json.dumps({"meta": meta, "shapes": results}, indent=1))
        print(f"wrote {args.json}")
    if args.keep:
        print(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
