/*
 * Stub of pulp-nnx inc/pulp_nnx_ne16.h, ours, declarations only
 * (pulp-platform/pulp-nnx inc/pulp_nnx_ne16.h, the version whose calls take
 * `const ne16_dev_t *`, matching `const ne16_dev_t *ne16_pulp_get_dev()`;
 * the GAP SDK ships the same headers under pulp_neural/).
 */
#ifndef MATCH_STUB_PULP_NNX_NE16_H
#define MATCH_STUB_PULP_NNX_NE16_H

#include "ne16.h"
#include "ne16_pulp_bsp.h"
#include "ne16_task.h"
#include <stdint.h>

void ne16_nnx_init(const ne16_dev_t *dev, ne16_pulp_conf_t *conf);
void ne16_nnx_term(const ne16_dev_t *dev);
/* pulp_nnx_ne16.h: "Block until you can dispatch to the accelerator." */
void ne16_nnx_dispatch_wait(const ne16_dev_t *dev);
/* pulp_nnx_ne16.h: "Fails with return code 1 if the task cannot be
 * dispatched. Otherwise returns 0." */
int ne16_nnx_dispatch(const ne16_dev_t *dev, ne16_task_t *task);
/* pulp_nnx_ne16.h: "Block until you can resolve the task." */
void ne16_nnx_resolve_wait(const ne16_dev_t *dev, ne16_task_t *task);
/* pulp_nnx_ne16.h: NE16's 2x2-strided mode; the driver walks the tile in
 * 3x3-output subtiles itself. "Works only if the k_out is divisible by 2." */
void ne16_nnx_dispatch_stride2x2(const ne16_dev_t *dev, ne16_task_t *task, const uint32_t w_in, const uint32_t k_in,
                                 const uint32_t h_out, const uint32_t w_out, const uint32_t k_out,
                                 const uint8_t h_ker, const uint8_t w_ker);

#endif /* MATCH_STUB_PULP_NNX_NE16_H */
