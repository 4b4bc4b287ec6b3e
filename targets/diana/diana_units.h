/*
 * DIANA's accelerator units as the generated code calls them: one tile of a
 * layer per call, described by an mk_job_t (match_kernels.h). The names are
 * the `call` names of targets/diana.hwm's offload rules.
 *
 * Host emulation, each unit in its own arithmetic (../shared/HARDWARE.md
 * "DIANA"):
 * - the digital array (diana_digital_*): int8 inputs and weights, weights
 *   read from their layout: per block of 16 output channels the bytes in
 *   (Cin, Kh, Kw, 16) order (depthwise: (Kh, Kw, 16) with each weight
 *   widened to a 4-byte word; dense: (Cin/16, 16, 16)), each 4-byte word
 *   byte-reversed, then the block's 16 int32 biases; out = clip((sum(x * w)
 *   + bias) >> shift) (32-bit wrapping sum, floor shift) to [-128, 127], or
 *   [0, 127] with ReLU. The appended bias is the layer's bias plus the
 *   requantization's (the compiler folds them; the kernel reads only the
 *   weight stream). Element-wise add: clip((a + b) >> 0). Stated
 *   deviation: a clip other than [-128, 127] / [0, 127] (e.g. ReLU6) is
 *   applied by the kernel at the array's output (on silicon: the host).
 * - the analog array (diana_analog_*): ternary weights read from their
 *   (w+, w-) bit pairs (rows C * Kh * Kw padded to 288, columns padded to
 *   128, four pairs per byte, w+ in the low bit); inputs must be 7-bit,
 *   [-64, 63] (the kernel aborts naming the layer otherwise); acc = sum(x *
 *   w); the ADC chain y = clip(floor(acc / gain), -32, 31) (6 bits), then
 *   (k[c] * y + l[c]) >> shift (floor), saturation, clip.
 * An output zero point z is added after the shift: the same as the
 *   hardware's bias (digital) or l (analog) plus z << shift.
 *
 * Stated deviation: the .hwm declares DIANA's activations CHW with each
 * 4-byte word byte-reversed; these kernels (and the tiles the compiler
 * moves) keep activations HWC, as GAP9's. The arithmetic does not depend
 * on it; the memory traffic and the device adapter do.
 *
 * Every kernel first calls diana_emu_kernel (the platform), which counts
 * the call and checks its buffers. A job outside the unit's form aborts
 * naming the layer: the offload rules and the lowering must not send one.
 */
#ifndef DIANA_UNITS_H
#define DIANA_UNITS_H

#include <stdint.h>

#include "match_kernels.h"

/* Provided by the platform (diana_platform.c). */
void diana_emu_kernel(const char *kernel, const void *in, uint32_t in_bytes, const void *w,
                      uint32_t w_bytes, void *out, uint32_t out_bytes);

/* The digital array (16 x 16 PEs). */
void diana_digital_conv(const mk_job_t *job);
void diana_digital_depthwise(const mk_job_t *job);
void diana_digital_dense(const mk_job_t *job);
void diana_digital_add(const mk_job_t *job);

/* The analog in-memory core (1152 x 512 ternary cells). */
void diana_analog_conv(const mk_job_t *job);
void diana_analog_dense(const mk_job_t *job);

#endif /* DIANA_UNITS_H */
