"""One accelerator described twice: as a match `.hwm` and in ZigZag 3.x's YAML.

The hardware (see docs/zigzag.md, "The hardware"): a MAC array of
`array_k` x `array_ox` PEs unrolling output channels (K; the channel G of a
depthwise layer) and output columns (OX), like DIANA's digital unit,
computing from one on-chip memory L1 that holds inputs, weights and outputs,
fed from an L2 by one DMA of `dma_bytes_per_cycle`. The PEs accumulate in
their own registers (ZigZag needs them as a memory level; match's cost model
counts them as part of the unit). L1's port to the array is wide enough
never to stall it, as match's model assumes (a `.hwm` memory without
`bandwidth` has no bandwidth limit). No transfer setup, no call overhead:
ZigZag has no such terms, so the `.hwm` states none.

The workload side turns one layer of the `zigzag_layers` bench (match's own
`Layer`, as JSON) into ZigZag's workload and mapping entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Hardware:
    """The parameters both descriptions are written from."""

    array_k: int = 16
    array_ox: int = 16
    l1_bytes: int = 64 * 1024
    l2_bytes: int = 2 * 1024 * 1024
    dma_bytes_per_cycle: int = 8
    clock_mhz: int = 100
    # Bits per cycle of L1's ports to the array: "unlimited" (never the bottleneck).
    l1_array_bits_per_cycle: int = 1 << 16

    @property
    def macs_per_cycle(self) -> int:
        return self.array_k * self.array_ox


def hwm_text(hw: Hardware, name: str = "zigzag_cmp") -> str:
    """The `.hwm` of the hardware (docs/hwm.md). Every conv (dense, depthwise)
    layer goes to the array `acc`; the host `cpu` keeps the rest."""
    types = "inputs i8, u8; weights i8, u8; outputs i8, u8, i32; requant fixed_point, scale_shift, shift, float"
    return f"""// Written by tools/zigzag_compare.py: the accelerator of the ZigZag comparison
// (docs/zigzag.md). The same hardware as tools/zigzag/describe.py's ZigZag YAML.
target {name} {{
    clock {hw.clock_mhz} MHz
    memory L2 {{ size {hw.l2_bytes} B }}
    memory L1 {{ size {hw.l1_bytes} B; double_buffer }}
    // ZigZag has no per-transfer setup, no command-size limit, no strided-dimension cost.
    dma L2 <-> L1 {{ bandwidth {hw.dma_bytes_per_cycle} B/cycle; setup 0 cycles; dims 3; start "dma_start"; wait "dma_wait" }}
    unit cpu {{ host; macs 1/cycle; compute_in L2; {types} }}
    // No `cycles` expression: the default model (MACs with K and OX rounded up
    // to the unrolling, over the peak), as ZigZag's spatial utilization.
    unit acc {{ spatial K {hw.array_k}, OX {hw.array_ox}; macs {hw.macs_per_cycle}/cycle; compute_in L1; {types} }}
    pattern act = relu | relu6 | clip
    pattern conv = conv2d >> bias? >> requant >> act?
    pattern fc_layer = dense >> bias? >> requant >> act?
    offload conv to acc where groups == 1 or depthwise call "acc_conv"
    offload fc_layer to acc call "acc_dense"
}}
"""


def _port(name: str, kind: str, bits: int, allocation: list[str]) -> dict[str, Any]:
    return {"name": name, "type": kind, "bandwidth_min": bits, "bandwidth_max": bits, "allocation": allocation}


def accelerator(hw: Hardware, name: str = "zigzag_cmp") -> dict[str, Any]:
    """ZigZag's accelerator YAML (as a dict) of the hardware.

    Allocation codes: fh = written from the level above, tl = read to the
    level below, fl = written from below, th = read to above.
    """
    dma_bits = hw.dma_bytes_per_cycle * 8
    wide = hw.l1_array_bits_per_cycle
    return {
        "name": name,
        "memories": {
            # One 32-bit accumulator per PE (served_dimensions []: one instance per PE).
            "reg_O": {
                "size": 32,
                "r_cost": 0.0,
                "w_cost": 0.0,
                "area": 0.0,
                "latency": 1,
                "operands": ["O"],
                "ports": [
                    _port("r_port_1", "read", 32, ["O, tl"]),
                    _port("r_port_2", "read", 32, ["O, th"]),
                    _port("w_port_1", "write", 32, ["O, fh"]),
                    _port("w_port_2", "write", 32, ["O, fl"]),
                ],
                "served_dimensions": [],
            },
            # L1: inputs (I1), weights (I2) and outputs (O) share it. One port
            # per operand to the array (ZigZag serializes operands that share
            # a port: at least a cycle each per transfer), each wide enough
            # never to stall it; one port on the DMA side at the DMA's bandwidth.
            "L1": {
                "size": hw.l1_bytes * 8,
                "r_cost": 0.0,
                "w_cost": 0.0,
                "area": 0.0,
                "latency": 1,
                "operands": ["I1", "I2", "O"],
                "ports": [
                    _port("r_port_1", "read", wide, ["I1, tl"]),
                    _port("r_port_2", "read", wide, ["I2, tl"]),
                    _port("rw_port_1", "read_write", wide, ["O, tl", "O, fl"]),
                    _port("rw_port_2", "read_write", dma_bits, ["I1, fh", "I2, fh", "O, fh", "O, th"]),
                ],
                "served_dimensions": ["D1", "D2"],
            },
            # L2: the level the tensors live in, one port at the DMA's bandwidth.
            "L2": {
                "size": hw.l2_bytes * 8,
                "r_cost": 0.0,
                "w_cost": 0.0,
                "area": 0.0,
                "latency": 1,
                "operands": ["I1", "I2", "O"],
                "ports": [
                    _port(
                        "rw_port_1",
                        "read_write",
                        dma_bits,
                        ["I1, fh", "I1, tl", "I2, fh", "I2, tl", "O, fh", "O, tl", "O, fl", "O, th"],
                    )
                ],
                "served_dimensions": ["D1", "D2"],
            },
        },
        "operational_array": {
            "input_precision": [8, 8],
            "unit_energy": 0.04,
            "unit_area": 1.0,
            "dimensions": ["D1", "D2"],
            "sizes": [hw.array_k, hw.array_ox],
        },
    }


def _bits(b: int) -> int:
    return max(8, int(b))


def is_depthwise(layer: dict[str, Any]) -> bool:
    return layer["op"] == "Conv" and layer["groups"] > 1 and layer["groups"] == layer["c"] == layer["k"]


def workload(layer: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """ZigZag's workload (one layer) of a match `Layer` (the bench's JSON)."""
    prec = {
        "I": _bits(layer["in_bits"]),
        "W": _bits(layer["w_bits"]),
        "O": 32,  # partial sums
        "O_final": _bits(layer["out_bits"]),
    }
    n = max(1, layer["n"])
    if layer["op"] == "Dense":
        return [
            {
                "id": 0,
                "name": name,
                "operator_type": "Gemm",
                "equation": "O[b][k]+=W[k][c]*I[b][c]",
                "loop_dims": ["B", "K", "C"],
                "loop_sizes": [n, layer["k"], layer["c"]],
                "operand_precision": prec,
                "operand_source": {"I": 0, "W": 0},
            }
        ]
    if layer["op"] != "Conv":
        raise ValueError(f"{name}: only conv and dense layers are compared, not {layer['op']}")
    if layer["groups"] not in (1,) and not is_depthwise(layer):
        raise ValueError(f"{name}: grouped convolution (groups {layer['groups']}) is not compared")
    if layer["dy"] != 1 or layer["dx"] != 1:
        raise ValueError(f"{name}: dilated convolution is not compared")
    rel = [f"ix={layer['sx']}*ox+1*fx", f"iy={layer['sy']}*oy+1*fy"]
    pads = [[layer["pad_left"], layer["pad_right"]], [layer["pad_top"], layer["pad_bottom"]]]
    common = {
        "id": 0,
        "name": name,
        "operator_type": "Conv",
        "dimension_relations": rel,
        "operand_precision": prec,
        "operand_source": {"I": 0, "W": 0},
        "pr_loop_dims": ["IX", "IY"],
        "pr_loop_sizes": [layer["ix"], layer["iy"]],
        "padding": pads,
    }
    if is_depthwise(layer):
        return [
            {
                **common,
                "equation": "O[b][g][oy][ox]+=W[g][fy][fx]*I[b][g][iy][ix]",
                "loop_dims": ["B", "G", "OY", "OX", "FY", "FX"],
                "loop_sizes": [n, layer["k"], layer["oy"], layer["ox"], layer["fy"], layer["fx"]],
            }
        ]
    return [
        {
            **common,
            "equation": "O[b][k][oy][ox]+=W[k][c][fy][fx]*I[b][c][iy][ix]",
            "loop_dims": ["B", "K", "C", "OY", "OX", "FY", "FX"],
            "loop_sizes": [n, layer["k"], layer["c"], layer["oy"], layer["ox"], layer["fy"], layer["fx"]],
        }
    ]


def mapping(layer: dict[str, Any], hw: Hardware) -> list[dict[str, Any]]:
    """ZigZag's mapping: the array's fixed spatial unrolling, K (G for a
    depthwise layer) on D1 and OX on D2 (B for a dense layer, whose OX is 1:
    15 of 16 columns idle, as in match's model), each clipped to the layer's
    extent; ZigZag's LOMA searches the temporal mapping."""
    if layer["op"] == "Dense":
        d1, d2 = ["K", min(hw.array_k, layer["k"])], ["B", min(hw.array_ox, max(1, layer["n"]))]
    else:
        outer = "G" if is_depthwise(layer) else "K"
        d1, d2 = [outer, min(hw.array_k, layer["k"])], ["OX", min(hw.array_ox, layer["ox"])]
    return [
        {
            "name": "default",
            "spatial_mapping": {"D1": [f"{d1[0]}, {d1[1]}"], "D2": [f"{d2[0]}, {d2[1]}"]},
            "memory_operand_links": {"O": "O", "W": "I2", "I": "I1"},
        }
    ]
