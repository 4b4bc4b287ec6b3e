/*
 * Stub of pulp-nnx ne16/bsp/ne16_pulp_bsp.h, ours, declarations only
 * (pulp-platform/pulp-nnx ne16/bsp/ne16_pulp_bsp.h). The GAP9 port of the
 * same BSP (ne16_gap9_bsp.h in later pulp-nnx) has the same shape.
 */
#ifndef MATCH_STUB_NE16_PULP_BSP_H
#define MATCH_STUB_NE16_PULP_BSP_H

#include "ne16.h"
#include <stdint.h>

typedef struct ne16_pulp_conf_t {
    int max_stall; /* ne16_pulp_bsp.h: HCI max stall of the lower-priority master */
} ne16_pulp_conf_t;

/* ne16_pulp_bsp.h: const ne16_dev_t *ne16_pulp_get_dev(); */
const ne16_dev_t *ne16_pulp_get_dev(void);

#endif /* MATCH_STUB_NE16_PULP_BSP_H */
