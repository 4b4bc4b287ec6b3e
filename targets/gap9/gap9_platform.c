/* GAP9 platform, host emulation: see gap9_platform.h and README.md. The
 * arenas, DMA queue, checks and counters are match_emu's (written by matchc
 * into the project); this file gives GAP9's memories and DMAs and the
 * functions gap9.hwm names. */
#include "gap9_platform.h"

#include <stdarg.h>
#include <stdio.h>

/* The emulation core, in this translation unit. */
#define MATCH_EMU_IMPL
#include "match_emu.c"
#include "match_memories.h"

/* ------------------------------------------------------------ memories */

/* The usable bytes (size - reserve) of the .hwm the project was compiled
 * for (match_memories.h); a target without one of them gets none. */
#ifndef MATCH_MEM_L1_BYTES
#define MATCH_MEM_L1_BYTES 0u
#endif
#ifndef MATCH_MEM_L2_BYTES
#define MATCH_MEM_L2_BYTES 0u
#endif
#ifndef MATCH_MEM_L3_BYTES
#define MATCH_MEM_L3_BYTES 0u
#endif

MATCH_EMU_STORAGE(g9_l1, MATCH_MEM_L1_BYTES);
MATCH_EMU_STORAGE(g9_l2, MATCH_MEM_L2_BYTES);
MATCH_EMU_STORAGE(g9_l3, MATCH_MEM_L3_BYTES);

enum { MEM_L1, MEM_L2, MEM_L3, N_MEMS };

static const match_emu_mem_t g9_mems[N_MEMS] = {
    {"L1", MATCH_MEM_L1_BYTES, 1, 0, 0, MATCH_EMU_ARENA(g9_l1)},
    {"L2", MATCH_MEM_L2_BYTES, 0, 0, 0, MATCH_EMU_ARENA(g9_l2)},
    {"L3", MATCH_MEM_L3_BYTES, 0, 1, 0, MATCH_EMU_ARENA(g9_l3)},
};

/* The L3 DMA's bytes per command: the .hwm's `max` (match_memories.h), none
 * when it states none (pi_ram_read / pi_ram_write take any length). */
#ifndef MATCH_DMA_L3_L2_MAX_BYTES
#define MATCH_DMA_L3_L2_MAX_BYTES 0u
#endif

/* The cluster DMA: 3 dimensions, at most 65535 B per command; the L3 DMA
 * (pi_ram_read / pi_ram_write): 2 dimensions. */
static const match_emu_dma_t g9_dma_cl = {"gap9_dma_start (L2 <-> L1)", 1, {{MEM_L2, MEM_L1}}, 3u, 65535u};
static const match_emu_dma_t g9_dma_l3 = {"gap9_l3_dma_start (L3 <-> L2)", 1, {{MEM_L3, MEM_L2}}, 2u,
                                          MATCH_DMA_L3_L2_MAX_BYTES};

void gap9_dma_start(void *dst, const void *src, uint32_t bytes_per_row, uint32_t rows, uint32_t dst_stride,
                    uint32_t src_stride, uint32_t planes, uint32_t dst_plane_stride, uint32_t src_plane_stride,
                    int channel)
{
    match_emu_dma_start(&g9_dma_cl, dst, src, bytes_per_row, rows, dst_stride, src_stride, planes,
                        dst_plane_stride, src_plane_stride, channel);
}

void gap9_dma_wait(int channel)
{
    match_emu_dma_wait(channel);
}

/* The L3 DMA has its own queues (channels 4..7 of the emulation). */
void gap9_l3_dma_start(void *dst, const void *src, uint32_t bytes_per_row, uint32_t rows, uint32_t dst_stride,
                       uint32_t src_stride, uint32_t planes, uint32_t dst_plane_stride, uint32_t src_plane_stride,
                       int channel)
{
    if (channel < 0 || channel >= MATCH_EMU_CHANNELS / 2) {
        match_emu_fail("gap9_l3_dma_start on channel %d (0..%d)", channel, MATCH_EMU_CHANNELS / 2 - 1);
    }
    match_emu_dma_start(&g9_dma_l3, dst, src, bytes_per_row, rows, dst_stride, src_stride, planes,
                        dst_plane_stride, src_plane_stride, MATCH_EMU_CHANNELS / 2 + channel);
}

void gap9_l3_dma_wait(int channel)
{
    if (channel < 0 || channel >= MATCH_EMU_CHANNELS / 2) {
        match_emu_fail("gap9_l3_dma_wait on channel %d (0..%d)", channel, MATCH_EMU_CHANNELS / 2 - 1);
    }
    match_emu_dma_wait(MATCH_EMU_CHANNELS / 2 + channel);
}

/* -------------------------------------------------------- api functions */

void *gap9_malloc(const char *memory, uint32_t bytes)
{
    return match_emu_malloc(memory, bytes);
}

void gap9_free(const char *memory, void *buffer, uint32_t bytes)
{
    match_emu_free("gap9_free", memory, buffer, bytes);
}

void gap9_layer(int32_t index, const char *name, uint64_t modeled_cycles)
{
    match_emu_layer(index, name, modeled_cycles);
}

void gap9_buffer(void *base, uint32_t bytes)
{
    match_emu_buffer(base, bytes);
}

void gap9_keep(void *base, uint32_t bytes)
{
    match_emu_keep(base, bytes);
}

void gap9_tile(const void *in, const void *w, void *out)
{
    match_emu_tile(in, w, out);
}

void gap9_emu_kernel(const char *kernel, const void *in, uint32_t in_bytes, const void *w, uint32_t w_bytes,
                     void *out, uint32_t out_bytes)
{
    match_emu_kernel(kernel, in, in_bytes, w, w_bytes, out, out_bytes);
}

void gap9_emu_access(const char *kernel, const char *role, const void *p, uint32_t bytes, int write)
{
    match_emu_access(kernel, role, p, bytes, write);
}

void gap9_timer_start(void)
{
    match_emu_timer_start();
}

uint32_t gap9_timer_stop(void)
{
    return match_emu_timer_stop();
}

int gap9_print(const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vprintf(fmt, ap);
    va_end(ap);
    return n;
}

/* The cluster's 8 cores, in turn. */
static int g9_core;

void gap9_cl_fork(void (*fn)(void *), void *arg)
{
    for (g9_core = 0; g9_core < 8; g9_core++) {
        fn(arg);
    }
    g9_core = 0;
}

int gap9_core_id(void)
{
    return g9_core;
}

void gap9_cl_barrier(void)
{
}

void gap9_sync(void)
{
}

void gap9_init(void)
{
    match_emu_init("gap9", g9_mems, N_MEMS);
}

void gap9_deinit(void)
{
    match_emu_deinit();
}
