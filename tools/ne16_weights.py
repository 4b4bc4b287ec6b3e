"""NE16 weight-layout vectors, from ../shared/HARDWARE.md "GAP9 NE16", steps 1-4.

An independent NumPy statement of the layout (it does not read the .hwm nor
share code with match-core/src/layout.rs): random int8 weights in
(Cout, Cin, H, W) order and the bytes NE16 reads for them. The Rust test
`ne16_layout_matches_the_numpy_vectors` (tests/tests/unit_kernels.rs)
encodes the same weights with gap9.hwm's ne16 weight layouts and compares
byte for byte.

Run from the repository root (deterministic; rewrites the committed file):

    python3 tools/ne16_weights.py   # writes tests/vectors/ne16/weights.json
"""

import json
import pathlib

import numpy as np

OUT = pathlib.Path("tests/vectors/ne16/weights.json")


def encode(w: np.ndarray, depthwise: bool) -> bytes:
    """HARDWARE.md's steps on int8 weights w of shape (Cout, Cin, H, W)."""
    bits = 8
    # 1. unsigned: w + 128 mod 256
    wu = ((w.astype(np.int32) + 128) % 256).astype(np.uint8)
    # 2. depthwise: swap the first two axes; pad Cin with zeros to a multiple of 16
    if depthwise:
        wu = wu.transpose(1, 0, 2, 3)
    cout, cin, h, wd = wu.shape
    cin_p = -(-cin // 16) * 16
    wu = np.pad(wu, ((0, 0), (0, cin_p - cin), (0, 0), (0, 0)))
    # 3. view as (Cout, Cin/16, 16, H*W), bit planes LSB first,
    #    transpose to (Cout, Cin/16, bits, H*W, 16), 8 channels per byte
    v = wu.reshape(cout, cin_p // 16, 16, h * wd)
    planes = (v[..., None] >> np.arange(bits, dtype=np.uint8)) & 1  # (Cout, Cb, 16, HW, bits)
    planes = planes.transpose(0, 1, 4, 3, 2)  # (Cout, Cb, bits, HW, 16)
    packed = np.packbits(planes.reshape(cout, cin_p // 16, bits, h * wd, 2, 8), axis=-1, bitorder="little")
    out = packed.reshape(-1).tobytes()
    # 4. size
    if depthwise:
        assert len(out) == -(-w.shape[0] // 16) * bits * h * wd * 2
    else:
        assert len(out) == w.shape[0] * -(-w.shape[1] // 16) * bits * h * wd * 2
    return out


def main() -> None:
    rng = np.random.default_rng(20261127)
    cases = []
    # (name, Cout, Cin, H, W, depthwise)
    shapes = [
        ("conv1x1_k4_c32", 4, 32, 1, 1, False),
        ("conv1x1_k3_c40", 3, 40, 1, 1, False),
        ("conv3x3_k3_c16", 3, 16, 3, 3, False),
        ("conv3x3_k2_c5", 2, 5, 3, 3, False),
        ("conv3x3_k5_c21", 5, 21, 3, 3, False),
        ("dw3x3_c20", 20, 1, 3, 3, True),
        ("dw3x3_c7", 7, 1, 3, 3, True),
    ]
    for name, cout, cin, h, wd, dw in shapes:
        w = rng.integers(-128, 128, size=(cout, cin, h, wd), dtype=np.int64)
        w.flat[0] = -128  # the extremes, always
        w.flat[-1] = 127
        enc = encode(w.astype(np.int8), dw)
        cases.append(
            {
                "name": name,
                "depthwise": dw,
                "shape_kchw": [cout, cin, h, wd],
                "weights": [int(x) for x in w.reshape(-1)],
                "encoded_hex": enc.hex(),
            }
        )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"source": "tools/ne16_weights.py", "cases": cases}, indent=1) + "\n")
    print(f"wrote {OUT} ({len(cases)} cases)")


if __name__ == "__main__":
    main()
