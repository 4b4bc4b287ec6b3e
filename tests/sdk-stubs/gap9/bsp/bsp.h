/*
 * Stub of the GAP SDK's bsp/bsp.h for a GAP9 board, ours, declarations
 * only: the board's default external RAM.
 *
 * Source: GreenWaves-Technologies/gap_sdk rtos/pmsis/pmsis_bsp/include/bsp/
 * gap9_evk.h (what bsp/bsp.h includes for the GAP9 EVK): the board's RAM
 * is the APS25XXXN OctaSPI PSRAM (CONFIG_APS25XXXN, 32 MiB), and
 * `pi_default_ram_conf` / `pi_default_ram_conf_init` name its
 * configuration; the board has no HyperRAM (no CONFIG_HYPERRAM), so this
 * stub SDK has no bsp/ram/hyperram.h. DORY's GAP9 memory code and the GAP
 * SDK examples open the RAM through these default names.
 */
#ifndef MATCH_STUB_BSP_BSP_H
#define MATCH_STUB_BSP_BSP_H

#include "bsp/ram.h"

struct pi_ram_conf {
    void *api; /* ram.h: "Reserved for internal runtime usage." */
};

/* bsp/ram/aps25xxxn.h: the generic RAM configuration first; members the
 * adapter never touches are left out. The driver's conf_init sets
 * reserve_addr_0 = 1 (aps25xxxn.c), so its allocator starts at RAM address
 * 4: no allocation is at 0, which gap9_malloc would return as NULL. */
struct pi_aps25xxxn_conf {
    struct pi_ram_conf ram;
    uint32_t baudrate;
};

void pi_aps25xxxn_conf_init(struct pi_aps25xxxn_conf *conf);

/* gap9_evk.h */
#define pi_default_ram_conf pi_aps25xxxn_conf
#define pi_default_ram_conf_init pi_aps25xxxn_conf_init

#endif /* MATCH_STUB_BSP_BSP_H */
