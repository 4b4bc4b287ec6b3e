/* Siracusa platform, host emulation: see siracusa_platform.h and README.md. */
#include "siracusa_platform.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* AddressSanitizer's manual poisoning, when built with it. */
#if defined(__SANITIZE_ADDRESS__)
#define SIR_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SIR_ASAN 1
#endif
#endif
#ifdef SIR_ASAN
/* From sanitizer/asan_interface.h (declared here: not every compiler ships
 * the header). */
void __asan_poison_memory_region(void const volatile *addr, size_t size);
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#define SIR_POISON(p, n) __asan_poison_memory_region((const volatile void *)(p), (size_t)(n))
#define SIR_UNPOISON(p, n) __asan_unpoison_memory_region((const volatile void *)(p), (size_t)(n))
#else
#define SIR_POISON(p, n) ((void)(p), (void)(n))
#define SIR_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* ------------------------------------------------------------- memories */

/* Per-byte state. */
#define B_ALLOC 1u /* inside an allocation */
#define B_BUF 2u   /* a tile buffer of the current layer (L1) */
#define B_PEND 4u  /* the destination of a pending DMA command */

typedef struct {
    const char *name;
    uint32_t size; /* targets/siracusa.hwm: usable bytes */
    int tiles;     /* the compute memory: only the layer's tile buffers are accessible */
    uint8_t *base, *state;
    uint16_t *reads; /* pending commands reading each byte */
    uint32_t used;
    /* the allocations, in stack order */
    uint32_t offs[16], lens[16];
    int n_allocs;
} sir_mem_t;

enum { M_L1, M_L2, M_L3, N_MEMS };

static sir_mem_t mems[N_MEMS] = {
    {"L1", 64000u, 1, NULL, NULL, NULL, 0, {0}, {0}, 0},
    {"L2", 1024000u, 0, NULL, NULL, NULL, 0, {0}, {0}, 0},
    {"L3", 64000000u, 0, NULL, NULL, NULL, 0, {0}, {0}, 0},
};

/* --------------------------------------------------------------- layers */

typedef struct {
    char name[64];
    uint64_t cycles, in_cmds, in_bytes, out_cmds, out_bytes, l3_cmds, l3_bytes, tiles, kernels;
} sir_layer_t;

static sir_layer_t *layers;
static int32_t n_layers, cap_layers;
static int32_t cur_layer = -1;
static char cur_name[64] = "(before the first layer)";
static unsigned runs;
static uint64_t clock_cycles, timer_base;

/* The current layer's tile buffers in L1. */
static struct {
    uint32_t off, len;
} bufs[32];
static int n_bufs;

static void sir_fail(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "siracusa emulation, layer %s: ", cur_name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

static sir_layer_t *layer_rec(void)
{
    static sir_layer_t outside;
    return cur_layer >= 0 && cur_layer < n_layers ? &layers[cur_layer] : &outside;
}

static void mem_ready(sir_mem_t *m)
{
    if (m->base == NULL) {
        m->base = (uint8_t *)calloc(m->size, 1);
        m->state = (uint8_t *)calloc(m->size, 1);
        m->reads = (uint16_t *)calloc(m->size, sizeof(uint16_t));
        if (m->base == NULL || m->state == NULL || m->reads == NULL) {
            sir_fail("cannot allocate the emulated %s (%u B)", m->name, (unsigned)m->size);
        }
    }
}

/* The memory holding [p, p + n), or -1. */
static int mem_of(const void *p, uint32_t n)
{
    int i;
    const uint8_t *b = (const uint8_t *)p;
    for (i = 0; i < N_MEMS; i++) {
        const sir_mem_t *m = &mems[i];
        if (m->base != NULL && b >= m->base && b < m->base + m->size) {
            if ((uint32_t)(b - m->base) + (uint64_t)n > m->size) {
                sir_fail("%u B at offset %u run past the end of %s", (unsigned)n, (unsigned)(b - m->base), m->name);
            }
            return i;
        }
    }
    return -1;
}

/* The byte offsets [off, off + n) of a strided box, each row: calls f. */
typedef void (*row_fn)(sir_mem_t *m, uint32_t off, uint32_t n, void *ctx);

static void for_rows(sir_mem_t *m, uint32_t off, uint32_t bpr, uint32_t rows, uint32_t stride, uint32_t planes,
                     uint32_t pstride, row_fn f, void *ctx)
{
    uint32_t p, r;
    for (p = 0; p < planes; p++) {
        for (r = 0; r < rows; r++) {
            f(m, off + p * pstride + r * stride, bpr, ctx);
        }
    }
}

/* An access of n bytes at off in memory m: allocated (and in L1, inside
 * the layer's tile buffers); `what` names it in messages. */
static void check_access(const sir_mem_t *m, uint32_t off, uint32_t n, const char *what)
{
    uint32_t i;
    const uint8_t need = m->tiles ? (uint8_t)(B_ALLOC | B_BUF) : (uint8_t)B_ALLOC;
    if ((uint64_t)off + n > m->size) {
        sir_fail("%s: %u B at %s offset %u are beyond its %u B", what, (unsigned)n, m->name, (unsigned)off,
                 (unsigned)m->size);
    }
    for (i = 0; i < n; i++) {
        if ((m->state[off + i] & need) != need) {
            sir_fail("%s: byte %u of %s is outside %s", what, (unsigned)(off + i), m->name,
                     m->tiles ? "the layer's tile buffers" : "the allocated arenas");
        }
    }
}

static void check_not_pending(const sir_mem_t *m, uint32_t off, uint32_t n, int writing, const char *what)
{
    uint32_t i;
    for (i = 0; i < n; i++) {
        if (m->state[off + i] & B_PEND) {
            sir_fail("%s: byte %u of %s is the destination of a DMA command not yet waited for", what,
                     (unsigned)(off + i), m->name);
        }
        if (writing && m->reads[off + i] != 0) {
            sir_fail("%s: byte %u of %s is read by a DMA command not yet waited for", what, (unsigned)(off + i),
                     m->name);
        }
    }
}

/* --------------------------------------------------------------- the DMAs */

typedef struct {
    uint8_t *dst;
    const uint8_t *src;
    uint32_t bpr, rows, dst_stride, src_stride, planes, dps, sps;
    int dmem, smem;
} sir_cmd_t;

#define N_CHANNELS 8
static sir_cmd_t *queue[N_CHANNELS];
static int qlen[N_CHANNELS], qcap[N_CHANNELS];

typedef struct {
    const char *name;
    int a, b; /* the memories it links, both ways */
    uint32_t dims, max;
} sir_dma_t;

/* targets/siracusa.hwm: dma L2 <-> L1 (dims 2, max 131071 B), dma L3 <-> L2 (dims 2). */
static const sir_dma_t dma_cluster = {"siracusa_dma_start (L2 <-> L1)", M_L2, M_L1, 2u, 131071u};
static const sir_dma_t dma_l3 = {"siracusa_l3_dma_start (L3 <-> L2)", M_L3, M_L2, 2u, 0u};

static void row_check_src(sir_mem_t *m, uint32_t off, uint32_t n, void *ctx)
{
    check_access(m, off, n, (const char *)ctx);
    check_not_pending(m, off, n, 0, (const char *)ctx);
}

static void row_check_dst(sir_mem_t *m, uint32_t off, uint32_t n, void *ctx)
{
    check_access(m, off, n, (const char *)ctx);
    check_not_pending(m, off, n, 1, (const char *)ctx);
}

static void row_mark_src(sir_mem_t *m, uint32_t off, uint32_t n, void *ctx)
{
    uint32_t i;
    int d = *(const int *)ctx;
    for (i = 0; i < n; i++) {
        m->reads[off + i] = (uint16_t)(m->reads[off + i] + d);
    }
}

static void row_mark_dst(sir_mem_t *m, uint32_t off, uint32_t n, void *ctx)
{
    uint32_t i;
    int pend = *(const int *)ctx;
    for (i = 0; i < n; i++) {
        if (pend) {
            m->state[off + i] |= B_PEND;
        } else {
            m->state[off + i] &= (uint8_t)~B_PEND;
        }
    }
    if (pend) {
        SIR_POISON(m->base + off, n);
    } else {
        SIR_UNPOISON(m->base + off, n);
    }
}

static void dma_start(const sir_dma_t *dma, void *dst, const void *src, uint32_t bpr, uint32_t rows,
                      uint32_t dst_stride, uint32_t src_stride, uint32_t planes, uint32_t dps, uint32_t sps,
                      int channel)
{
    sir_cmd_t c;
    uint64_t bytes = (uint64_t)bpr * rows * planes;
    uint64_t dspan, sspan;
    int one = 1;
    sir_layer_t *l = layer_rec();
    if (channel < 0 || channel >= N_CHANNELS) {
        sir_fail("%s: channel %d (0..%d)", dma->name, channel, N_CHANNELS - 1);
    }
    if (bytes == 0) {
        sir_fail("%s: an empty command", dma->name);
    }
    if ((planes > 1 && dma->dims < 3) || (rows > 1 && dma->dims < 2)) {
        sir_fail("%s: a %s command, the DMA moves %u dimension(s)", dma->name, planes > 1 ? "3-D" : "2-D",
                 (unsigned)dma->dims);
    }
    if (dma->max != 0 && bytes > dma->max) {
        sir_fail("%s: %llu B in one command, at most %u", dma->name, (unsigned long long)bytes, (unsigned)dma->max);
    }
    dspan = (uint64_t)(planes - 1) * dps + (uint64_t)(rows - 1) * dst_stride + bpr;
    sspan = (uint64_t)(planes - 1) * sps + (uint64_t)(rows - 1) * src_stride + bpr;
    if (dspan > UINT32_MAX || sspan > UINT32_MAX) {
        sir_fail("%s: a command spanning more than 4 GiB", dma->name);
    }
    c.dmem = mem_of(dst, (uint32_t)dspan);
    c.smem = mem_of(src, (uint32_t)sspan);
    /* One side in each memory the DMA links; the model's constant weights
     * (static data, outside the arenas: L2 on the device) may be read into
     * L1 by the cluster DMA. */
    if (!(c.dmem >= 0 && c.smem >= 0 &&
          ((c.smem == dma->a && c.dmem == dma->b) || (c.smem == dma->b && c.dmem == dma->a))) &&
        !(c.smem < 0 && c.dmem == M_L1 && dma == &dma_cluster)) {
        sir_fail("%s: from %s to %s, which this DMA does not link", dma->name,
                 c.smem < 0 ? "constant data" : mems[c.smem].name,
                 c.dmem < 0 ? "outside the emulated memories" : mems[c.dmem].name);
    }
    c.dst = (uint8_t *)dst;
    c.src = (const uint8_t *)src;
    c.bpr = bpr;
    c.rows = rows;
    c.dst_stride = dst_stride;
    c.src_stride = src_stride;
    c.planes = planes;
    c.dps = dps;
    c.sps = sps;
    {
        sir_mem_t *dm = &mems[c.dmem];
        const uint32_t doff = (uint32_t)(c.dst - dm->base);
        if (c.smem >= 0) {
            sir_mem_t *sm = &mems[c.smem];
            const uint32_t so = (uint32_t)(c.src - sm->base);
            for_rows(sm, so, bpr, rows, src_stride, planes, sps, row_check_src, (void *)dma->name);
            for_rows(sm, so, bpr, rows, src_stride, planes, sps, row_mark_src, &one);
        }
        for_rows(dm, doff, bpr, rows, dst_stride, planes, dps, row_check_dst, (void *)dma->name);
        for_rows(dm, doff, bpr, rows, dst_stride, planes, dps, row_mark_dst, &one);
    }
    if (qlen[channel] == qcap[channel]) {
        int cap = qcap[channel] ? 2 * qcap[channel] : 16;
        sir_cmd_t *q = (sir_cmd_t *)realloc(queue[channel], (size_t)cap * sizeof(sir_cmd_t));
        if (q == NULL) {
            sir_fail("out of host memory");
        }
        queue[channel] = q;
        qcap[channel] = cap;
    }
    queue[channel][qlen[channel]++] = c;
    if (dma == &dma_l3) {
        l->l3_cmds++;
        l->l3_bytes += bytes;
    } else if (c.dmem == M_L1) {
        l->in_cmds++;
        l->in_bytes += bytes;
    } else {
        l->out_cmds++;
        l->out_bytes += bytes;
    }
}

static void dma_wait(int channel)
{
    int i, zero = 0, minus = -1;
    if (channel < 0 || channel >= N_CHANNELS) {
        sir_fail("wait on channel %d (0..%d)", channel, N_CHANNELS - 1);
    }
    for (i = 0; i < qlen[channel]; i++) {
        const sir_cmd_t *c = &queue[channel][i];
        sir_mem_t *dm = &mems[c->dmem];
        const uint32_t doff = (uint32_t)(c->dst - dm->base);
        uint32_t p, r;
        for_rows(dm, doff, c->bpr, c->rows, c->dst_stride, c->planes, c->dps, row_mark_dst, &zero);
        for (p = 0; p < c->planes; p++) {
            for (r = 0; r < c->rows; r++) {
                memmove(c->dst + p * c->dps + r * c->dst_stride, c->src + p * c->sps + r * c->src_stride, c->bpr);
            }
        }
        if (c->smem >= 0) {
            sir_mem_t *sm = &mems[c->smem];
            for_rows(sm, (uint32_t)(c->src - sm->base), c->bpr, c->rows, c->src_stride, c->planes, c->sps,
                     row_mark_src, &minus);
        }
    }
    qlen[channel] = 0;
}

/* Commands pending that stay on chip (not to or from L3): a layer may end
 * with an L3 prefetch of a later layer's weights still running (it is
 * waited for in that layer); everything else must be done. */
static int pending_on_chip(void)
{
    int ch, i, n = 0;
    for (ch = 0; ch < N_CHANNELS; ch++) {
        for (i = 0; i < qlen[ch]; i++) {
            n += queue[ch][i].dmem != M_L3 && queue[ch][i].smem != M_L3;
        }
    }
    return n;
}

static int pending(void)
{
    int ch, n = 0;
    for (ch = 0; ch < N_CHANNELS; ch++) {
        n += qlen[ch];
    }
    return n;
}

void siracusa_dma_start(void *dst, const void *src, uint32_t bytes_per_row, uint32_t rows, uint32_t dst_stride,
                        uint32_t src_stride, uint32_t planes, uint32_t dst_plane_stride, uint32_t src_plane_stride,
                        int channel)
{
    dma_start(&dma_cluster, dst, src, bytes_per_row, rows, dst_stride, src_stride, planes, dst_plane_stride,
              src_plane_stride, channel);
}

void siracusa_dma_wait(int channel)
{
    dma_wait(channel);
}

void siracusa_l3_dma_start(void *dst, const void *src, uint32_t bytes_per_row, uint32_t rows, uint32_t dst_stride,
                           uint32_t src_stride, uint32_t planes, uint32_t dst_plane_stride,
                           uint32_t src_plane_stride, int channel)
{
    dma_start(&dma_l3, dst, src, bytes_per_row, rows, dst_stride, src_stride, planes, dst_plane_stride,
              src_plane_stride, channel);
}

void siracusa_l3_dma_wait(int channel)
{
    dma_wait(channel);
}

/* ------------------------------------------------------ arenas, services */

static sir_mem_t *mem_named(const char *name)
{
    int i;
    for (i = 0; i < N_MEMS; i++) {
        if (name != NULL && strcmp(name, mems[i].name) == 0) {
            return &mems[i];
        }
    }
    sir_fail("no memory named %s (L1, L2, L3)", name ? name : "(null)");
    return NULL;
}

void *siracusa_malloc(const char *memory, uint32_t bytes)
{
    sir_mem_t *m = mem_named(memory);
    uint32_t off = (m->used + 15u) & ~15u;
    mem_ready(m);
    if (m->n_allocs == (int)(sizeof(m->offs) / sizeof(m->offs[0]))) {
        sir_fail("too many arenas in %s", m->name);
    }
    if ((uint64_t)off + bytes > m->size) {
        sir_fail("%u B do not fit %s: %u of its %u B are in use", (unsigned)bytes, m->name, (unsigned)m->used,
                 (unsigned)m->size);
    }
    memset(m->state + off, B_ALLOC, bytes);
    if (m->tiles) {
        /* L1 stays poisoned outside the current layer's tile buffers */
        SIR_POISON(m->base + off, bytes);
    }
    m->offs[m->n_allocs] = off;
    m->lens[m->n_allocs] = bytes;
    m->n_allocs++;
    m->used = off + bytes;
    return m->base + off;
}

void siracusa_free(const char *memory, void *buffer, uint32_t bytes)
{
    sir_mem_t *m = mem_named(memory);
    int top = m->n_allocs - 1;
    if (top < 0 || (uint8_t *)buffer != m->base + m->offs[top] || bytes != m->lens[top]) {
        sir_fail("siracusa_free(%s): not the last arena allocated there", m->name);
    }
    check_not_pending(m, m->offs[top], bytes, 1, "siracusa_free");
    memset(m->state + m->offs[top], 0, bytes);
    SIR_UNPOISON(m->base + m->offs[top], bytes);
    m->n_allocs = top;
    m->used = top > 0 ? m->offs[top - 1] + m->lens[top - 1] : 0;
}

void siracusa_init(void)
{
    int i;
    for (i = 0; i < N_MEMS; i++) {
        if (mems[i].tiles || i == M_L2) {
            mem_ready(&mems[i]);
        }
    }
}

void siracusa_timer_start(void)
{
    timer_base = clock_cycles;
}

uint32_t siracusa_timer_stop(void)
{
    return (uint32_t)(clock_cycles - timer_base);
}

int siracusa_print(const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vprintf(fmt, ap);
    va_end(ap);
    return n;
}

/* ----------------------------------------------------- layers, tiles, units */

static void clear_bufs(void)
{
    sir_mem_t *l1 = &mems[M_L1];
    int i;
    for (i = 0; i < n_bufs; i++) {
        uint32_t j;
        for (j = 0; j < bufs[i].len; j++) {
            l1->state[bufs[i].off + j] &= (uint8_t)~B_BUF;
        }
        SIR_POISON(l1->base + bufs[i].off, bufs[i].len);
    }
    n_bufs = 0;
}

/* A layer name into a 64-byte field, cut if longer. */
static void copy_name(char *dst, const char *src)
{
    size_t n = strlen(src);
    if (n > 63) {
        n = 63;
    }
    memmove(dst, src, n);
    dst[n] = '\0';
}

void siracusa_layer(int32_t index, const char *name, uint64_t modeled_cycles)
{
    if (pending_on_chip() != 0) {
        sir_fail("%d DMA command(s) still pending at the end of the layer (missing wait)", pending_on_chip());
    }
    if (mems[M_L1].base != NULL) {
        clear_bufs();
    }
    if (index < 0) {
        runs++;
        cur_layer = -1;
        copy_name(cur_name, "(after the last layer)");
        return;
    }
    if (index >= n_layers) {
        int32_t i;
        if (index >= cap_layers) {
            int32_t cap = index + 16;
            sir_layer_t *l = (sir_layer_t *)realloc(layers, (size_t)cap * sizeof(sir_layer_t));
            if (l == NULL) {
                sir_fail("out of host memory");
            }
            layers = l;
            cap_layers = cap;
        }
        for (i = n_layers; i <= index; i++) {
            memset(&layers[i], 0, sizeof(sir_layer_t));
        }
        n_layers = index + 1;
    }
    cur_layer = index;
    copy_name(cur_name, name ? name : "?");
    copy_name(layers[index].name, cur_name);
    layers[index].cycles += modeled_cycles;
    clock_cycles += modeled_cycles;
}

void siracusa_buffer(void *base, uint32_t bytes)
{
    sir_mem_t *l1 = &mems[M_L1];
    uint32_t off, j;
    if (mem_of(base, bytes) != M_L1) {
        sir_fail("a tile buffer outside L1");
    }
    off = (uint32_t)((uint8_t *)base - l1->base);
    if (n_bufs == (int)(sizeof(bufs) / sizeof(bufs[0]))) {
        sir_fail("too many tile buffers");
    }
    for (j = 0; j < bytes; j++) {
        if (!(l1->state[off + j] & B_ALLOC)) {
            sir_fail("tile buffer at L1 offset %u: byte %u is not in an allocated arena", (unsigned)off,
                     (unsigned)(off + j));
        }
        if (l1->state[off + j] & B_BUF) {
            sir_fail("tile buffers overlap at L1 offset %u", (unsigned)(off + j));
        }
        l1->state[off + j] |= B_BUF;
    }
    SIR_UNPOISON(base, bytes);
    bufs[n_bufs].off = off;
    bufs[n_bufs].len = bytes;
    n_bufs++;
}

/* The registered tile buffer that starts at p: its bytes, checked. */
static void check_tile_buffer(const void *p, int writing, const char *what)
{
    sir_mem_t *l1 = &mems[M_L1];
    int i;
    if (p == NULL) {
        return;
    }
    for (i = 0; i < n_bufs; i++) {
        if ((const uint8_t *)p == l1->base + bufs[i].off) {
            check_not_pending(l1, bufs[i].off, bufs[i].len, writing, what);
            return;
        }
    }
    sir_fail("%s: not one of the layer's tile buffers", what);
}

void siracusa_tile(const void *in, const void *w, void *out)
{
    check_tile_buffer(in, 0, "the tile's input");
    check_tile_buffer(w, 0, "the tile's weights");
    check_tile_buffer(out, 1, "the tile's output");
    layer_rec()->tiles++;
}

static void check_operand(const void *p, uint32_t n, int writing, const char *kernel, const char *what)
{
    int m;
    char msg[96];
    if (p == NULL || n == 0) {
        return;
    }
    m = mem_of(p, n);
    snprintf(msg, sizeof(msg), "%s's %s", kernel, what);
    if (m != M_L1) {
        sir_fail("%s is not in L1, where the unit computes", msg);
    }
    check_access(&mems[m], (uint32_t)((const uint8_t *)p - mems[m].base), n, msg);
    check_not_pending(&mems[m], (uint32_t)((const uint8_t *)p - mems[m].base), n, writing, msg);
}

void siracusa_emu_kernel(const char *kernel, const void *in, uint32_t in_bytes, const void *w, uint32_t w_bytes,
                         void *out, uint32_t out_bytes)
{
    check_operand(in, in_bytes, 0, kernel, "input");
    check_operand(w, w_bytes, 0, kernel, "weights");
    check_operand(out, out_bytes, 1, kernel, "output");
    layer_rec()->kernels++;
}

/* ---------------------------------------------------------------- counters */

static void write_counters(FILE *f)
{
    int32_t i;
    fprintf(f, "# match counters v1: target siracusa, runs %u (sums over the runs)\n", runs);
    fprintf(f, "%-5s %-32s %12s %8s %10s %8s %10s %8s %10s %8s %8s\n", "layer", "name", "cycles", "dma_in",
            "in_bytes", "dma_out", "out_bytes", "dma_l3", "l3_bytes", "calls", "kernels");
    for (i = 0; i < n_layers; i++) {
        const sir_layer_t *l = &layers[i];
        fprintf(f, "%-5ld %-32s %12llu %8llu %10llu %8llu %10llu %8llu %10llu %8llu %8llu\n", (long)i,
                l->name[0] ? l->name : "-", (unsigned long long)l->cycles, (unsigned long long)l->in_cmds,
                (unsigned long long)l->in_bytes, (unsigned long long)l->out_cmds, (unsigned long long)l->out_bytes,
                (unsigned long long)l->l3_cmds, (unsigned long long)l->l3_bytes, (unsigned long long)l->tiles,
                (unsigned long long)l->kernels);
    }
}

void siracusa_deinit(void)
{
    const char *path = getenv("MATCH_COUNTERS");
    int i;
    if (pending() != 0) {
        sir_fail("the run ended with %d DMA command(s) pending (missing wait)", pending());
    }
    if (path != NULL && path[0] != '\0') {
        FILE *f = strcmp(path, "-") == 0 ? stderr : fopen(path, "w");
        if (f == NULL) {
            fprintf(stderr, "siracusa emulation: cannot write the counters to %s\n", path);
            exit(1);
        }
        write_counters(f);
        if (f != stderr && fclose(f) != 0) {
            fprintf(stderr, "siracusa emulation: cannot write the counters to %s\n", path);
            exit(1);
        }
    }
    for (i = 0; i < N_CHANNELS; i++) {
        free(queue[i]);
        queue[i] = NULL;
        qlen[i] = qcap[i] = 0;
    }
    for (i = 0; i < N_MEMS; i++) {
        if (mems[i].base != NULL) {
            SIR_UNPOISON(mems[i].base, mems[i].size);
        }
        free(mems[i].base);
        free(mems[i].state);
        free(mems[i].reads);
        mems[i].base = mems[i].state = NULL;
        mems[i].reads = NULL;
        mems[i].used = 0;
        mems[i].n_allocs = 0;
    }
    free(layers);
    layers = NULL;
    n_layers = cap_layers = 0;
    n_bufs = 0;
}
