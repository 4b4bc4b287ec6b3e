/*
 * Stub of the GAP SDK's bsp/ram/hyperram.h, ours, declarations only.
 *
 * Source: GreenWaves-Technologies/gap_sdk rtos/pmsis/bsp include/bsp/ram/hyperram.h
 * (struct pi_hyperram_conf embeds struct pi_ram_conf first; the adapter
 * only calls pi_hyperram_conf_init and passes the structure on).
 */
#ifndef MATCH_STUB_BSP_RAM_HYPERRAM_H
#define MATCH_STUB_BSP_RAM_HYPERRAM_H

#include "bsp/ram.h"

struct pi_ram_conf {
    void *api; /* ram.h: "Reserved for internal runtime usage." */
};

struct pi_hyperram_conf {
    struct pi_ram_conf ram; /* hyperram.h: generic RAM configuration */
    int cs;
    int xip_en;
    uint32_t baudrate;
    int reserve_addr_0;
};

void pi_hyperram_conf_init(struct pi_hyperram_conf *conf);

#endif /* MATCH_STUB_BSP_RAM_HYPERRAM_H */
