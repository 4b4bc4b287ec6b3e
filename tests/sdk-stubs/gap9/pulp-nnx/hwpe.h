/*
 * Stub of pulp-nnx util/hwpe.h, ours: the HWPE device handle NE16's device
 * structure embeds (pulp-platform/pulp-nnx util/hwpe.h: struct hwpe_dev_t
 * holds the register base address).
 */
#ifndef MATCH_STUB_HWPE_H
#define MATCH_STUB_HWPE_H

#include <stdint.h>

typedef struct hwpe_dev_t {
    volatile uint32_t *base_addr;
} hwpe_dev_t;

#endif /* MATCH_STUB_HWPE_H */
