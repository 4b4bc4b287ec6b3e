/*
 * Stub of the DIANA runtime's utils.h, ours, declarations only: the layer
 * descriptor the accelerator kernels take and the two completion waits.
 *
 * Source: the DIANA runtime as DORY's Diana backend and MATCH's DIANA
 * target call it (pulp-platform/dory Hardware_targets/Diana templates,
 * eml-eda/match DIANA kernel wrapper): `typedef struct Layer_parameters
 * { uint32_t c, k, cx, cy, fx, fy, ox, oy, activation_function,
 * output_shift, padding, dilation, stride, ox_unroll; }` and
 * `void global_sync_digital(); void global_sync_analog();`.
 */
#ifndef MATCH_STUB_DIANA_UTILS_H
#define MATCH_STUB_DIANA_UTILS_H

#include <stdint.h>

#define DIG_HWPE_PARALLELISM 16 /* utils.h: the digital array's 16 PEs per dimension */

typedef struct Layer_parameters {
    uint32_t c;  /* input channels (depthwise: the channels) */
    uint32_t k;  /* output channels */
    uint32_t cx; /* input width */
    uint32_t cy; /* input height */
    uint32_t fx;
    uint32_t fy;
    uint32_t ox; /* output width (analog: per ox_unroll) */
    uint32_t oy;
    uint32_t activation_function; /* 1 = ReLU, 0 = none */
    uint32_t output_shift;        /* requantization right shift */
    uint32_t padding;             /* packed per side, see the adapter */
    uint32_t dilation;
    uint32_t stride;
    uint32_t ox_unroll; /* analog: output columns computed per array activation */
} Layer_parameters;

/* Block until the digital / analog accelerator's current job (a kernel or
 * a memory copy) is done. */
void global_sync_digital(void);
void global_sync_analog(void);

#endif /* MATCH_STUB_DIANA_UTILS_H */
