/*
 * DIANA device adapter: the platform functions diana.hwm names (api block,
 * the DMAs' start / wait) on DIANA's PULP runtime and its HWME HAL.
 *
 * UNTESTED ON SILICON (README.md).
 *
 * Memory model. DIANA's activation memory and its two weight memories are
 * not mapped in the RISC-V core's address space: only the HWME reaches
 * them, by offset (hal/hwme/hwme_v1.h), and the accelerator kernels stream
 * their weights from L2 themselves (kernels.h: `weights_L2`). The tile
 * buffers of the generated code are C arrays, so on the device they are
 * L2 staging buffers: diana_dma_start copies into them with the core, and
 * each kernel (diana_device_units.c) moves its staged tile into the
 * activation memory with the HWME, in the accelerator's layout, runs, and
 * moves the result back. The L2 -> WD / WA transfers thus stage the
 * encoded weights in L2, from where the kernel's weight stream reads them.
 */
#include "diana_device.h"

#include <stdarg.h>

/* ------------------------------------------------------------------ api */

void diana_init(void)
{
    /* hwme_v1.h: clock and events of both accelerators. */
    plp_hwme_enable();
}

void diana_deinit(void)
{
    plp_hwme_disable();
}

/* Every HWME job this adapter triggers (a copy or a kernel) is waited with
 * global_sync_digital / _analog right where it is triggered, so nothing is
 * in flight here. (Not calling them again: whether they return with no job
 * pending is unverified.) */
void diana_sync(void)
{
}

/* The arenas of the generated code, at each run. L2: the runtime's L2
 * allocator. L1, WD, WA: L2 staging buffers (see "Memory model"). */
void *diana_malloc(const char *memory, uint32_t bytes)
{
    if (memory == NULL) {
        return NULL;
    }
    /* Whole 32-byte units: the HWME copies of the kernels move those. */
    return rt_alloc(RT_ALLOC_FC_DATA, (int)((bytes + 31u) / 32u * 32u));
}

void diana_free(const char *memory, void *buffer, uint32_t bytes)
{
    if (memory == NULL || buffer == NULL) {
        return;
    }
    rt_free(RT_ALLOC_FC_DATA, buffer, (int)((bytes + 31u) / 32u * 32u));
}

static rt_perf_t dnd_perf;

void diana_timer_start(void)
{
    rt_perf_init(&dnd_perf);
    rt_perf_conf(&dnd_perf, 1u << RT_PERF_CYCLES);
    rt_perf_reset(&dnd_perf);
    rt_perf_start(&dnd_perf);
}

uint32_t diana_timer_stop(void)
{
    rt_perf_stop(&dnd_perf);
    return (uint32_t)rt_perf_read(RT_PERF_CYCLES);
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

/* ------------------------------------------- the generated code's layers */

const char *diana_layer_name = "-";

/* The emulation counts and checks here; the device keeps the layer's name
 * for its messages (nothing is in flight between layers: diana_sync). */
void diana_layer(int32_t index, const char *name, uint64_t modeled_cycles)
{
    (void)modeled_cycles;
    diana_layer_name = index < 0 || name == NULL ? "-" : name;
}

/* Tile buffers are L2 staging on the device: nothing to register. */
void diana_buffer(void *base, uint32_t bytes)
{
    (void)base;
    (void)bytes;
}

/* Inter-layer residency: the next layer reads these bytes of its L1 tile
 * buffer in place. Here the tile buffers are L2 staging buffers allocated
 * once per run ("Memory model"), so the kept output stays there and the
 * next kernel stages it into the activation memory as any input: nothing
 * to do (and, on this adapter, no HWME copy saved). */
void diana_keep(void *base, uint32_t bytes)
{
    (void)base;
    (void)bytes;
}

void diana_tile(const void *in, const void *w, void *out)
{
    (void)in;
    (void)w;
    (void)out;
}

void diana_device_fail(const char *kernel, const char *layer, const char *what)
{
    volatile int stop = 1;
    printf("%s: layer %s: %s\n", kernel, layer != NULL ? layer : "?", what);
    while (stop) {
    }
}

/* Size in front: diana_free needs it. */
void *diana_device_alloc(uint32_t bytes)
{
    const uint32_t n = (bytes + 31u) / 32u * 32u;
    uint32_t *head = (uint32_t *)diana_malloc("L2", n + 32u);
    uint8_t *p = head != NULL ? (uint8_t *)head + 32u : NULL;
    uint32_t i;
    if (p == NULL) {
        diana_device_fail("diana_device_alloc", diana_layer_name, "out of L2");
        return NULL;
    }
    head[0] = n + 32u;
    for (i = 0; i < n; i++) {
        p[i] = 0;
    }
    return p;
}

void diana_device_free(void *p)
{
    uint32_t *head;
    if (p == NULL) {
        return;
    }
    head = (uint32_t *)(void *)((uint8_t *)p - 32u);
    diana_free("L2", head, head[0]);
}

/* ------------------------------------------------------ HWME memory copies */

/* The engine's unit: DORY's Diana dory.c pads every length to 32 bytes
 * (DMA_PARALLELISM) and gives it in 4-byte words, and the activation-memory
 * address `act` (the value its kernels take too) divided by 16. Digital:
 * one bank, 16 bytes an address. Analog: 4 banks of 16 bytes a row, one
 * address a row: DORY's analog template moves 512-row (32 KiB) blocks with
 * the address advanced by 16 * 512, and its output follows at 16 * 512 * 4
 * (row 2048). So a chunk `done` bytes in starts at row act / 16 + done / 64
 * there, at act / 16 + done / 16 on the digital engine. unverified: the
 * largest length one command takes; 32 KiB chunks here (DORY's analog path
 * moves 16 x 512 words). */
#define DND_UNIT 32u
#define DND_CHUNK 32768u

void diana_device_copy(int analog, void *l2, uint32_t act, uint32_t bytes, int to_l2)
{
    uint32_t done = 0;
    if ((act & 15u) != 0u) {
        diana_device_fail("diana_device_copy", "-", "activation-memory address not 16-byte aligned");
    }
    while (done < bytes) {
        const uint32_t left = bytes - done;
        const uint32_t n = left < DND_CHUNK ? left : DND_CHUNK;
        const uint32_t words = (n + DND_UNIT - 1u) / DND_UNIT * DND_UNIT / 4u;
        const uint32_t ext = (uint32_t)(uintptr_t)l2 + done;
        if (analog) {
            /* DORY drives the analog engine with 4 banks (ops 3 / 4):
             * rows of 16 bytes per bank. */
            hwme_ana_memcpy_op(to_l2 ? 3u : 4u);
            hwme_ana_memcpy_addr_set(ext);
            hwme_ana_l1addr_set(act / 16u + done / 64u);
            hwme_ana_memcpy_bank_length_set(4u);
            hwme_ana_memcpy_row_length_set(4u * words / (4u * 16u));
            hwme_ana_trigger_job();
            global_sync_analog();
        } else {
            hwme_memcpy_op(to_l2 ? 1u : 2u);
            hwme_memcpy_addr_set(ext);
            hwme_l1addr_set((act + done) / 16u);
            hwme_memcpy_n_set(words);
            hwme_trigger_job();
            global_sync_digital();
        }
        done += n;
    }
}

/* ----------------------------------------------------- staging "DMA" */

/* The DMA contract (match-core/src/emit/tiled.rs): planes x rows x
 * bytes_per_row bytes, strides in bytes; wait(channel) returns when all
 * are done. Both sides are L2 here (see "Memory model"), so the core copies
 * at start and wait has nothing left to wait for. */
void diana_dma_start(void *dst, const void *src, uint32_t bytes_per_row, uint32_t rows, uint32_t dst_stride,
                     uint32_t src_stride, uint32_t planes, uint32_t dst_plane_stride, uint32_t src_plane_stride,
                     int channel)
{
    uint32_t p, r, i;
    if (channel < 0 || channel > 2) {
        diana_device_fail("diana_dma_start", diana_layer_name, "DMA channel out of range");
    }
    for (p = 0; p < planes; p++) {
        for (r = 0; r < rows; r++) {
            uint8_t *d = (uint8_t *)dst + p * dst_plane_stride + r * dst_stride;
            const uint8_t *s = (const uint8_t *)src + p * src_plane_stride + r * src_stride;
            for (i = 0; i < bytes_per_row; i++) {
                d[i] = s[i];
            }
        }
    }
}

void diana_dma_wait(int channel)
{
    if (channel < 0 || channel > 2) {
        diana_device_fail("diana_dma_wait", diana_layer_name, "DMA channel out of range");
    }
}
