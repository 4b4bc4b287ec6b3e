/* DIANA platform, host emulation: see diana_platform.h and README.md. The
 * arenas, DMA queue, checks and counters are match_emu's (written by matchc
 * into the project); this file gives DIANA's memories and DMA and the
 * functions diana.hwm names. */
#include "diana_platform.h"

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
#ifndef MATCH_MEM_WD_BYTES
#define MATCH_MEM_WD_BYTES 0u
#endif
#ifndef MATCH_MEM_WA_BYTES
#define MATCH_MEM_WA_BYTES 0u
#endif

MATCH_EMU_STORAGE(dn_l1, MATCH_MEM_L1_BYTES);
MATCH_EMU_STORAGE(dn_l2, MATCH_MEM_L2_BYTES);
MATCH_EMU_STORAGE(dn_wd, MATCH_MEM_WD_BYTES);
MATCH_EMU_STORAGE(dn_wa, MATCH_MEM_WA_BYTES);

enum { MEM_L1, MEM_L2, MEM_WD, MEM_WA, N_MEMS };

/* L1: the accelerators' activation memory; WD, WA: the digital and analog
 * weight memories (compute memories: only tile buffers are accessible;
 * DMA commands only write them). */
static const match_emu_mem_t dn_mems[N_MEMS] = {
    {"L1", MATCH_MEM_L1_BYTES, 1, 0, 0, MATCH_EMU_ARENA(dn_l1)},
    {"L2", MATCH_MEM_L2_BYTES, 0, 0, 0, MATCH_EMU_ARENA(dn_l2)},
    {"WD", MATCH_MEM_WD_BYTES, 1, 0, 1, MATCH_EMU_ARENA(dn_wd)},
    {"WA", MATCH_MEM_WA_BYTES, 1, 0, 1, MATCH_EMU_ARENA(dn_wa)},
};

/* One function for the three DMAs of diana.hwm (L2 <-> L1, L2 -> WD, L2 ->
 * WA): 1-D commands, no size limit. */
static const match_emu_dma_t dn_dma = {
    "diana_dma_start", 3, {{MEM_L2, MEM_L1}, {MEM_L2, MEM_WD}, {MEM_L2, MEM_WA}}, 1u, 0u};

void diana_dma_start(void *dst, const void *src, uint32_t bytes_per_row, uint32_t rows, uint32_t dst_stride,
                     uint32_t src_stride, uint32_t planes, uint32_t dst_plane_stride, uint32_t src_plane_stride,
                     int channel)
{
    match_emu_dma_start(&dn_dma, dst, src, bytes_per_row, rows, dst_stride, src_stride, planes, dst_plane_stride,
                        src_plane_stride, channel);
}

void diana_dma_wait(int channel)
{
    match_emu_dma_wait(channel);
}

/* -------------------------------------------------------- api functions */

void *diana_malloc(const char *memory, uint32_t bytes)
{
    return match_emu_malloc(memory, bytes);
}

void diana_free(const char *memory, void *buffer, uint32_t bytes)
{
    match_emu_free("diana_free", memory, buffer, bytes);
}

void diana_layer(int32_t index, const char *name, uint64_t modeled_cycles)
{
    match_emu_layer(index, name, modeled_cycles);
}

void diana_buffer(void *base, uint32_t bytes)
{
    match_emu_buffer(base, bytes);
}

void diana_keep(void *base, uint32_t bytes)
{
    match_emu_keep(base, bytes);
}

void diana_tile(const void *in, const void *w, void *out)
{
    match_emu_tile(in, w, out);
}

void diana_emu_kernel(const char *kernel, const void *in, uint32_t in_bytes, const void *w, uint32_t w_bytes,
                      void *out, uint32_t out_bytes)
{
    match_emu_kernel(kernel, in, in_bytes, w, w_bytes, out, out_bytes);
}

void diana_timer_start(void)
{
    match_emu_timer_start();
}

uint32_t diana_timer_stop(void)
{
    return match_emu_timer_stop();
}

int diana_print(const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vprintf(fmt, ap);
    va_end(ap);
    return n;
}

void diana_sync(void)
{
}

void diana_init(void)
{
    match_emu_init("diana", dn_mems, N_MEMS);
}

void diana_deinit(void)
{
    match_emu_deinit();
}
