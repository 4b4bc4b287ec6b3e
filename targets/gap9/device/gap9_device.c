/*
 * GAP9 device adapter: the platform functions gap9.hwm names (api block,
 * the two DMAs' start / wait) on the GAP SDK (PMSIS cluster, cluster DMA,
 * the board's external RAM driver) and the pulp-nnx NE16 driver's device
 * handle.
 *
 * UNTESTED ON SILICON (README.md): type-checked against our stub SDK
 * headers and cross-compiled for rv32imc, never run on a GAP9.
 *
 * Execution model: the FC opens the cluster and the external RAM (gap9_init),
 * then sends one cluster task that runs the whole network on the cluster
 * controller (gap9_main.c). So every DMA start / wait below is issued from
 * the cluster, as PMSIS requires for pi_cl_dma_* and pi_cl_ram_*, and the
 * unit kernels (gap9_device_units.c) fork the 8 workers from there. The
 * layers the FC unit takes (portable kernels on L2) then also run on the
 * cluster controller: a placement choice of this adapter, not of gap9.hwm.
 */
#include "gap9_device.h"

#include <stdarg.h>

#include "bsp/bsp.h"

struct pi_device gap9_cluster_dev;
struct pi_device gap9_ram_dev;
static struct pi_cluster_conf g9d_cluster_conf;
static struct pi_default_ram_conf g9d_ram_conf;
static int g9d_ram_open;

/* ------------------------------------------------------------------ api */

void gap9_init(void)
{
    /* fc_to_cl_delegate.h: conf_init, open_from_conf, open. */
    pi_cluster_conf_init(&g9d_cluster_conf);
    g9d_cluster_conf.id = 0;
    pi_open_from_conf(&gap9_cluster_dev, &g9d_cluster_conf);
    if (pi_cluster_open(&gap9_cluster_dev) != 0) {
        gap9_device_fail("gap9_init", "-", "pi_cluster_open failed");
    }
    /* bsp/bsp.h, bsp/ram.h: the board's L3 RAM. On the GAP9 EVK that is
     * the APS25XXXN OctaSPI PSRAM (gap_sdk bsp/gap9_evk.h: the default RAM
     * configuration; the board has no HyperRAM). */
    pi_default_ram_conf_init(&g9d_ram_conf);
    pi_open_from_conf(&gap9_ram_dev, &g9d_ram_conf);
    if (pi_ram_open(&gap9_ram_dev) != 0) {
        gap9_device_fail("gap9_init", "-", "pi_ram_open failed");
    }
    g9d_ram_open = 1;
}

void gap9_deinit(void)
{
    if (g9d_ram_open) {
        pi_ram_close(&gap9_ram_dev);
        g9d_ram_open = 0;
    }
    pi_cluster_close(&gap9_cluster_dev);
}

void gap9_cl_barrier(void)
{
    pi_cl_team_barrier();
}

void gap9_cl_fork(void (*fn)(void *), void *arg)
{
    pi_cl_team_fork(GAP9_CL_CORES, fn, arg);
}

/* The worker's index 0..7. On GAP9 the cluster controller, which runs the
 * network outside forks, is core 8: 0 too, as the header promises.
 * unverified: GAP9's core numbering (pmsis: pi_core_id). */
int gap9_core_id(void)
{
    return pi_core_id() % GAP9_CL_CORES;
}

/* The arenas of the generated code, at each run, from the cluster
 * controller (the execution model above): L1 from the cluster's L1 heap,
 * L2 and L3 through the cluster-side requests to the FC's allocators. */
void *gap9_malloc(const char *memory, uint32_t bytes)
{
    const char m = memory != NULL ? memory[1] : '\0';
    if (memory == NULL || memory[0] != 'L' || memory[2] != '\0' || (m != '1' && m != '2' && m != '3')) {
        gap9_device_fail("gap9_malloc", gap9_layer_name, "no such memory");
        return NULL;
    }
    if (m == '1') {
        return pi_cl_l1_malloc(&gap9_cluster_dev, bytes);
    }
    if (m == '2') {
        pi_cl_alloc_req_t req;
        pi_cl_l2_malloc((int)bytes, &req);
        return pi_cl_l2_malloc_wait(&req);
    }
    {
        /* external RAM: the address is not a pointer of the chip; the
         * generated code only hands it to gap9_l3_dma_start. Never 0 (a
         * NULL here): the default RAM configuration reserves address 0
         * (aps25xxxn.c: reserve_addr_0 = 1, allocations from 4). */
        pi_cl_ram_alloc_req_t req;
        uint32_t addr = 0;
        pi_cl_ram_alloc(&gap9_ram_dev, bytes, &req);
        if (pi_cl_ram_alloc_wait(&req, &addr) != 0) {
            return NULL;
        }
        return (void *)(uintptr_t)addr;
    }
}

void gap9_free(const char *memory, void *buffer, uint32_t bytes)
{
    if (buffer == NULL || memory == NULL) {
        return;
    }
    if (memory[1] == '1') {
        pi_cl_l1_free(&gap9_cluster_dev, buffer, (int)bytes);
    } else if (memory[1] == '2') {
        pi_cl_free_req_t req;
        pi_cl_l2_free(buffer, (int)bytes, &req);
        pi_cl_l2_free_wait(&req);
    } else {
        pi_cl_ram_free_req_t req;
        pi_cl_ram_free(&gap9_ram_dev, (uint32_t)(uintptr_t)buffer, bytes, &req);
        (void)pi_cl_ram_free_wait(&req);
    }
}

void gap9_timer_start(void)
{
    pi_perf_conf(1u << PI_PERF_CYCLES);
    pi_perf_reset();
    pi_perf_start();
}

uint32_t gap9_timer_stop(void)
{
    pi_perf_stop();
    return (uint32_t)pi_perf_read(PI_PERF_CYCLES);
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

/* ------------------------------------------- the generated code's layers */

/* The current layer's name, for the messages of gap9_device_fail. */
const char *gap9_layer_name = "-";

/* The emulation counts and checks here; the device drains the DMAs at the
 * end of a layer (the generated code has waited for them already) and
 * keeps the layer's name for its messages. */
void gap9_layer(int32_t index, const char *name, uint64_t modeled_cycles)
{
    (void)modeled_cycles;
    gap9_sync();
    gap9_layer_name = index < 0 || name == NULL ? "-" : name;
}

/* A tile buffer of the current layer: on the device it must be in L1, where
 * the cluster DMA and NE16 reach it. */
void gap9_buffer(void *base, uint32_t bytes)
{
    if (bytes > 0u && (!gap9_in_l1(base) || !gap9_in_l1((uint8_t *)base + bytes - 1u))) {
        gap9_device_fail("gap9_buffer", gap9_layer_name, "a tile buffer outside L1");
    }
}

/* Inter-layer residency: the next layer reads these bytes of L1 in place.
 * Nothing to do on the device: the L1 arena is one allocation for the
 * whole run (gap9_malloc at each run, every layer in one cluster task,
 * gap9_main.c), so a buffer keeps its contents from one layer to the next;
 * the emulation scrubs every buffer not kept. */
void gap9_keep(void *base, uint32_t bytes)
{
    if (bytes > 0u && (!gap9_in_l1(base) || !gap9_in_l1((uint8_t *)base + bytes - 1u))) {
        gap9_device_fail("gap9_keep", gap9_layer_name, "a kept buffer outside L1");
    }
}

/* Before each tile's kernel: nothing to do on the device (the emulation
 * checks the buffers' pending DMA state here). */
void gap9_tile(const void *in, const void *w, void *out)
{
    (void)in;
    (void)w;
    (void)out;
}

void gap9_device_fail(const char *kernel, const char *layer, const char *what)
{
    volatile int stop = 1;
    printf("%s: layer %s: %s\n", kernel, layer != NULL ? layer : "?", what);
    while (stop) {
    }
}

int gap9_in_l1(const void *p)
{
    const uint32_t a = (uint32_t)(uintptr_t)p;
    return a >= GAP9_L1_BASE && a - GAP9_L1_BASE < GAP9_L1_SIZE;
}

int gap9_in_l2(const void *p)
{
    const uint32_t a = (uint32_t)(uintptr_t)p;
    return a >= GAP9_L2_BASE && a - GAP9_L2_BASE < GAP9_L2_SIZE;
}

/* ------------------------------------------------------------------ NE16 */

static ne16_pulp_conf_t g9d_ne16_conf;

const ne16_dev_t *gap9_ne16_dev(void)
{
    return ne16_pulp_get_dev();
}

void gap9_cluster_begin(void)
{
    /* pulp-nnx test app: max_stall 8 lets the cores through on the HCI. */
    g9d_ne16_conf.max_stall = 8;
    ne16_nnx_init(gap9_ne16_dev(), &g9d_ne16_conf);
}

void gap9_cluster_end(void)
{
    ne16_nnx_term(gap9_ne16_dev());
}

/* ----------------------------------------------------- L2 <-> L1 cluster DMA */

/* Commands in flight per channel. Each holds one of the cluster DMA's
 * transfer counters until waited (pmsis_api cl_dma.h: "freed when the wait
 * function is called"), and there are 16 (the GAP9 HAL's cluster DMA
 * TID field is 4 bits, its status mask 16 bits): a 17th allocation would
 * wait for a counter only this core can free. 5 per channel x 3 channels
 * stays below; a full queue waits its commands first, which is always
 * safe. */
#define G9D_DMA_QUEUE 5
#define G9D_CHANNELS 3
/* cl_dma.h: the command's size field is 16 bits. */
#define G9D_DMA_MAX 65535u

typedef struct {
    pi_cl_dma_cmd_t cmd[G9D_DMA_QUEUE];
    int n;
} g9d_queue_t;

static PI_CL_L1 g9d_queue_t g9d_dma[G9D_CHANNELS];

static g9d_queue_t *g9d_channel(const char *fn, int channel)
{
    if (channel < 0 || channel >= G9D_CHANNELS) {
        gap9_device_fail(fn, gap9_layer_name, "DMA channel out of range");
    }
    return &g9d_dma[channel];
}

static void g9d_drain(g9d_queue_t *q)
{
    int i;
    for (i = 0; i < q->n; i++) {
        pi_cl_dma_cmd_wait(&q->cmd[i]);
    }
    q->n = 0;
}

static pi_cl_dma_cmd_t *g9d_slot(g9d_queue_t *q)
{
    if (q->n == G9D_DMA_QUEUE) {
        g9d_drain(q);
    }
    return &q->cmd[q->n++];
}

/* A contiguous copy of `bytes` in commands of at most G9D_DMA_MAX bytes. */
static void g9d_dma_1d(g9d_queue_t *q, uint32_t ext, uint32_t loc, uint32_t bytes, pi_cl_dma_dir_e dir)
{
    while (bytes > 0u) {
        const uint32_t n = bytes < G9D_DMA_MAX ? bytes : G9D_DMA_MAX;
        pi_cl_dma_cmd(ext, loc, n, dir, g9d_slot(q));
        ext += n;
        loc += n;
        bytes -= n;
    }
}

/* `rows` rows of `run` bytes, `ext_stride` apart in L2, packed in L1: 2-D
 * commands (cl_dma.h: the external side is the strided one; `length` bytes
 * per line, lines `stride` apart), split into row blocks under the 16-bit
 * size. GAP9's HAL writes the 2-D length and stride as two 32-bit command
 * words (MCHAN v7), so they take any value here. */
static void g9d_dma_2d(g9d_queue_t *q, uint32_t ext, uint32_t loc, uint32_t run, uint32_t rows,
                       uint32_t ext_stride, pi_cl_dma_dir_e dir)
{
    uint32_t r = 0;
    if (run == 0u || rows == 0u) {
        return;
    }
    if (run > G9D_DMA_MAX) {
        for (r = 0; r < rows; r++) {
            g9d_dma_1d(q, ext + r * ext_stride, loc + r * run, run, dir);
        }
        return;
    }
    while (r < rows) {
        const uint32_t per = G9D_DMA_MAX / run;
        const uint32_t n = rows - r < per ? rows - r : per;
        if (n == 1u) {
            pi_cl_dma_cmd(ext + r * ext_stride, loc + r * run, run, dir, g9d_slot(q));
        } else {
            pi_cl_dma_cmd_2d(ext + r * ext_stride, loc + r * run, n * run, ext_stride, run, dir, g9d_slot(q));
        }
        r += n;
    }
}

/* Byte copy by the calling core, for transfers with no L1 side (see
 * gap9_dma_start). */
static void g9d_copy(uint8_t *dst, const uint8_t *src, uint32_t bytes)
{
    uint32_t i;
    for (i = 0; i < bytes; i++) {
        dst[i] = src[i];
    }
}

/* The DMA contract (match-core/src/emit/tiled.rs, docs/hwm.md "DMA
 * functions"): queue planes x rows x bytes_per_row bytes, strides in
 * bytes; gap9_dma_wait(channel) returns when all are done. The L1 side
 * gives the direction. */
void gap9_dma_start(void *dst, const void *src, uint32_t bytes_per_row, uint32_t rows, uint32_t dst_stride,
                    uint32_t src_stride, uint32_t planes, uint32_t dst_plane_stride, uint32_t src_plane_stride,
                    int channel)
{
    g9d_queue_t *q = g9d_channel("gap9_dma_start", channel);
    const int to_l1 = gap9_in_l1(dst);
    const int from_l1 = gap9_in_l1(src);
    uint32_t p, r;
    if (!to_l1 && !from_l1) {
        /* Neither side in L1: a generated project without the platform's
         * malloc keeps its tile arena in a static array, which the linker
         * puts in L2. The cluster DMA cannot copy L2 to L2, so the calling
         * core copies now: correct, slower. */
        for (p = 0; p < planes; p++) {
            for (r = 0; r < rows; r++) {
                g9d_copy((uint8_t *)dst + p * dst_plane_stride + r * dst_stride,
                         (const uint8_t *)src + p * src_plane_stride + r * src_stride, bytes_per_row);
            }
        }
        return;
    }
    {
        const pi_cl_dma_dir_e dir = to_l1 ? PI_CL_DMA_DIR_EXT2LOC : PI_CL_DMA_DIR_LOC2EXT;
        const uint32_t loc = (uint32_t)(uintptr_t)(to_l1 ? dst : src);
        const uint32_t ext = (uint32_t)(uintptr_t)(to_l1 ? src : dst);
        const uint32_t loc_rs = to_l1 ? dst_stride : src_stride;
        const uint32_t ext_rs = to_l1 ? src_stride : dst_stride;
        const uint32_t loc_ps = to_l1 ? dst_plane_stride : src_plane_stride;
        const uint32_t ext_ps = to_l1 ? src_plane_stride : dst_plane_stride;
        for (p = 0; p < planes; p++) {
            const uint32_t l = loc + p * loc_ps, e = ext + p * ext_ps;
            if (rows <= 1u || (loc_rs == bytes_per_row && ext_rs == bytes_per_row)) {
                g9d_dma_1d(q, e, l, rows * bytes_per_row, dir);
            } else if (loc_rs == bytes_per_row) {
                g9d_dma_2d(q, e, l, bytes_per_row, rows, ext_rs, dir);
            } else {
                /* Strided on the L1 side too: the cluster DMA's local side
                 * is contiguous, so one command per row. */
                for (r = 0; r < rows; r++) {
                    g9d_dma_1d(q, e + r * ext_rs, l + r * loc_rs, bytes_per_row, dir);
                }
            }
        }
    }
}

void gap9_dma_wait(int channel)
{
    g9d_drain(g9d_channel("gap9_dma_wait", channel));
}

/* ------------------------------------------------ L3 <-> L2 external RAM */

/* Cluster-side RAM requests (bsp/ram.h pi_cl_ram_*): remote calls to the
 * FC's external RAM driver, each request alive until its wait. */
#define G9D_RAM_QUEUE 8

typedef struct {
    pi_cl_ram_req_t req[G9D_RAM_QUEUE];
    uint8_t write[G9D_RAM_QUEUE];
    int n;
} g9d_ram_queue_t;

static g9d_ram_queue_t g9d_ram[G9D_CHANNELS];

static g9d_ram_queue_t *g9d_ram_channel(const char *fn, int channel)
{
    if (channel < 0 || channel >= G9D_CHANNELS) {
        gap9_device_fail(fn, gap9_layer_name, "L3 DMA channel out of range");
    }
    return &g9d_ram[channel];
}

static void g9d_ram_drain(g9d_ram_queue_t *q)
{
    int i;
    for (i = 0; i < q->n; i++) {
        if (q->write[i]) {
            pi_cl_ram_write_wait(&q->req[i]);
        } else {
            pi_cl_ram_read_wait(&q->req[i]);
        }
    }
    q->n = 0;
}

static pi_cl_ram_req_t *g9d_ram_slot(g9d_ram_queue_t *q, int write)
{
    if (q->n == G9D_RAM_QUEUE) {
        g9d_ram_drain(q);
    }
    q->write[q->n] = (uint8_t)write;
    return &q->req[q->n++];
}

/* One strided block: rows of `run` bytes, `ram_stride` apart in the RAM,
 * `chip_stride` apart on the chip: one request when both sides are
 * contiguous, else one per row. Not the _2d requests (bsp/ram.h): on GAP9
 * silicon the OctaSPI RAM's 2-D copy delivers garbage for more than one
 * line (pulp-platform/Deeploy Deeploy/Targets/GAP9/DMA/L3Dma.py, found on
 * hardware, right in GVSoC), so rows go as 1-D requests, as Deeploy does. */
static void g9d_ram_block(g9d_ram_queue_t *q, int write, uint32_t ram, uint8_t *chip, uint32_t run, uint32_t rows,
                          uint32_t ram_stride, uint32_t chip_stride)
{
    uint32_t r;
    if (rows <= 1u || (ram_stride == run && chip_stride == run)) {
        if (write) {
            pi_cl_ram_write(&gap9_ram_dev, ram, chip, rows * run, g9d_ram_slot(q, 1));
        } else {
            pi_cl_ram_read(&gap9_ram_dev, ram, chip, rows * run, g9d_ram_slot(q, 0));
        }
    } else {
        for (r = 0; r < rows; r++) {
            g9d_ram_block(q, write, ram + r * ram_stride, chip + r * chip_stride, run, 1u, run, run);
        }
    }
}

/* The same contract as gap9_dma_start, between external RAM and L2. The side
 * outside the chip's memories is the external RAM address. unverified: how a
 * device build gives L3-resident tensors their external RAM addresses (the
 * generated code holds them as pointers; here their value is taken as the
 * RAM address, e.g. from pi_ram_alloc). */
void gap9_l3_dma_start(void *dst, const void *src, uint32_t bytes_per_row, uint32_t rows, uint32_t dst_stride,
                       uint32_t src_stride, uint32_t planes, uint32_t dst_plane_stride,
                       uint32_t src_plane_stride, int channel)
{
    g9d_ram_queue_t *q = g9d_ram_channel("gap9_l3_dma_start", channel);
    const int write = gap9_in_l2(src) && !gap9_in_l2(dst);
    uint32_t p;
    for (p = 0; p < planes; p++) {
        if (write) {
            g9d_ram_block(q, 1, (uint32_t)(uintptr_t)dst + p * dst_plane_stride,
                          (uint8_t *)(uintptr_t)src + p * src_plane_stride, bytes_per_row, rows, dst_stride,
                          src_stride);
        } else {
            g9d_ram_block(q, 0, (uint32_t)(uintptr_t)src + p * src_plane_stride,
                          (uint8_t *)dst + p * dst_plane_stride, bytes_per_row, rows, src_stride, dst_stride);
        }
    }
}

void gap9_l3_dma_wait(int channel)
{
    g9d_ram_drain(g9d_ram_channel("gap9_l3_dma_wait", channel));
}

/* Every transfer of every channel done. */
void gap9_sync(void)
{
    int c;
    for (c = 0; c < G9D_CHANNELS; c++) {
        g9d_drain(&g9d_dma[c]);
        g9d_ram_drain(&g9d_ram[c]);
    }
}
