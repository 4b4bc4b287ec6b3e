/* match_emu: the target-neutral emulation core, see match_emu.h. A
 * platform file includes it (one translation unit) after defining
 * MATCH_EMU_IMPL; compiled on its own (a build that compiles every .c of
 * the project, e.g. for a device without the emulation), it is empty. */
#ifdef MATCH_EMU_IMPL
#include "match_emu.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* AddressSanitizer's manual poisoning, when built with it. */
#if defined(__SANITIZE_ADDRESS__)
#define EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EMU_ASAN 1
#endif
#endif
#ifdef EMU_ASAN
/* AddressSanitizer's interface (sanitizer/asan_interface.h, not shipped
 * with every compiler). */
void __asan_poison_memory_region(void const volatile *addr, size_t size);
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#define EMU_POISON(p, n) __asan_poison_memory_region((const volatile void *)(p), (size_t)(n))
#define EMU_UNPOISON(p, n) __asan_unpoison_memory_region((const volatile void *)(p), (size_t)(n))
#else
#define EMU_POISON(p, n) ((void)(p), (void)(n))
#define EMU_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* ------------------------------------------------------------ memories */

/* Per-byte state. */
#define ST_ALLOC 1u /* inside an allocation */
#define ST_BUF 2u   /* a tile buffer of the current layer (compute memories) */
#define ST_PEND 4u  /* the destination of a pending DMA command */

typedef struct {
    match_emu_mem_t d;
    uint32_t used;
} emu_mem_t;

static const char *emu_target = "?";
static emu_mem_t emu_mems[MATCH_EMU_MAX_MEMS];
static int emu_n_mems;
/* "L1", "L1 or WD", ...: the compute memories, for messages. */
static char emu_compute_names[128];

/* --------------------------------------------------------- layers, counters */

typedef struct {
    char name[64];
    uint64_t cycles;
    uint64_t in_cmds, in_bytes, out_cmds, out_bytes, l3_cmds, l3_bytes, tiles, kernels;
} emu_layer_t;

static emu_layer_t *emu_layers;
static int32_t emu_n_layers, emu_cap_layers;
static int32_t emu_cur = -1; /* index of the current layer, -1: none */
static char emu_cur_name[64] = "(before the first layer)";
static uint32_t emu_runs;

#define EMU_MAX_BUFS 64
static struct {
    uint8_t *base;
    uint32_t bytes;
} emu_bufs[EMU_MAX_BUFS];
static int emu_n_bufs;
/* Tile buffers the layer declared live for the next one (match_emu_keep),
 * and the ones the previous layer kept. */
static struct {
    uint8_t *base;
    uint32_t bytes;
} emu_keep_now[EMU_MAX_BUFS], emu_keep_prev[EMU_MAX_BUFS];
static int emu_n_keep_now, emu_n_keep_prev;

/* What a compute memory's bytes hold when no layer keeps them (a layer's
 * tile buffers after it ends): a code that reads a buffer it neither
 * loaded nor was handed sees this, not the previous layer's data. */
#define EMU_SCRUB 0xa5

void match_emu_fail(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s emulation: layer '%s': ", emu_target, emu_cur_name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    abort();
}

#ifdef EMU_ASAN
/* Called by AddressSanitizer when it detects an error: name the layer. */
void __asan_on_error(void);
void __asan_on_error(void)
{
    fprintf(stderr, "%s emulation: AddressSanitizer error in layer '%s'\n", emu_target, emu_cur_name);
}
#endif

static emu_layer_t *emu_counters(void)
{
    return emu_cur >= 0 && emu_cur < emu_n_layers ? &emu_layers[emu_cur] : NULL;
}

/* The memory holding [p, p + n), -1 when outside every emulated memory;
 * aborts when the range straddles a memory's end. */
static int emu_mem_of(const void *p, uint32_t n)
{
    int m;
    uintptr_t a = (uintptr_t)p;
    for (m = 0; m < emu_n_mems; m++) {
        uintptr_t b = (uintptr_t)emu_mems[m].d.base, e = b + emu_mems[m].d.size;
        if (a >= b && a < e) {
            if (n > e - a) {
                match_emu_fail("%u B at %s+%lu run past the end of %s (%u B)", (unsigned)n, emu_mems[m].d.name,
                               (unsigned long)(a - b), emu_mems[m].d.name, (unsigned)emu_mems[m].d.size);
            }
            return m;
        }
    }
    return -1;
}

static uint32_t emu_off(int m, const void *p)
{
    return (uint32_t)((uintptr_t)p - (uintptr_t)emu_mems[m].d.base);
}

/* Checks bytes [p, p + n) of memory m for an access `what`: inside a tile
 * buffer (compute memories) or an allocation; not a pending destination;
 * when written, not read by a pending command. */
static void emu_check(int m, const uint8_t *p, uint32_t n, int write, const char *what)
{
    const emu_mem_t *mem = &emu_mems[m];
    uint32_t o = emu_off(m, p), i;
    uint8_t need = mem->d.compute ? ST_BUF : ST_ALLOC;
    for (i = 0; i < n; i++) {
        uint8_t s = mem->d.state[o + i];
        if ((s & need) == 0) {
            match_emu_fail("%s touches %s+%lu, outside %s", what, mem->d.name, (unsigned long)(o + i),
                           mem->d.compute ? "the layer's tile buffers" : "the allocated arenas");
        }
        if (s & ST_PEND) {
            match_emu_fail("%s touches %s+%lu, the destination of a pending DMA command (missing wait?)", what,
                           mem->d.name, (unsigned long)(o + i));
        }
        if (write && mem->d.reads[o + i] != 0) {
            match_emu_fail("%s writes %s+%lu, which a pending DMA command still reads (missing wait?)", what,
                           mem->d.name, (unsigned long)(o + i));
        }
    }
}

/* ------------------------------------------------------------------ DMA */

typedef struct {
    uint8_t *dst;
    const uint8_t *src;
    uint32_t run, rows, planes, dst_rs, src_rs, dst_ps, src_ps;
    int dst_mem, src_mem;
} emu_cmd_t;

#define MATCH_EMU_CHANNELS 8
static emu_cmd_t *emu_queue[MATCH_EMU_CHANNELS];
static int emu_qlen[MATCH_EMU_CHANNELS], emu_qcap[MATCH_EMU_CHANNELS];

enum { OP_CHECK, OP_PEND, OP_UNPEND, OP_READ, OP_UNREAD };

/* Applies `op` to every row run of one side of a command (dst or src). */
static void emu_rows(const emu_cmd_t *c, int dst, int op, const char *what)
{
    int m = dst ? c->dst_mem : c->src_mem;
    const uint8_t *base = dst ? c->dst : c->src;
    uint32_t rs = dst ? c->dst_rs : c->src_rs, ps = dst ? c->dst_ps : c->src_ps, p, r, i, o;
    emu_mem_t *mem;
    if (m < 0) {
        return;
    }
    mem = &emu_mems[m];
    for (p = 0; p < c->planes; p++) {
        for (r = 0; r < c->rows; r++) {
            const uint8_t *row = base + (size_t)p * ps + (size_t)r * rs;
            o = emu_off(m, row);
            switch (op) {
            case OP_CHECK:
                emu_check(m, row, c->run, dst, what);
                break;
            case OP_PEND:
                for (i = 0; i < c->run; i++) {
                    mem->d.state[o + i] |= ST_PEND;
                }
                EMU_POISON(row, c->run);
                break;
            case OP_UNPEND:
                for (i = 0; i < c->run; i++) {
                    mem->d.state[o + i] &= (uint8_t)~ST_PEND;
                }
                EMU_UNPOISON(row, c->run);
                break;
            case OP_READ:
                for (i = 0; i < c->run; i++) {
                    if (mem->d.reads[o + i] == 255u) {
                        match_emu_fail("more than 255 pending DMA commands read %s+%u", mem->d.name, (unsigned)(o + i));
                    }
                    mem->d.reads[o + i]++;
                }
                break;
            default:
                for (i = 0; i < c->run; i++) {
                    mem->d.reads[o + i]--;
                }
                break;
            }
        }
    }
}

void match_emu_dma_start(const match_emu_dma_t *d, void *dst, const void *src, uint32_t run, uint32_t rows,
                         uint32_t dst_rs, uint32_t src_rs, uint32_t planes, uint32_t dst_ps, uint32_t src_ps,
                         int ch)
{
    emu_cmd_t c;
    emu_layer_t *L = emu_counters();
    uint32_t dims = 1u + (rows > 1u) + (planes > 1u), bytes;
    int ok, i;
    uint64_t dst_span, src_span;
    if (ch < 0 || ch >= MATCH_EMU_CHANNELS) {
        match_emu_fail("%s on channel %d (0..%d)", d->name, ch, MATCH_EMU_CHANNELS - 1);
    }
    if (run == 0u || rows == 0u || planes == 0u) {
        match_emu_fail("%s: an empty command (%u x %u x %u B)", d->name, (unsigned)planes, (unsigned)rows,
                       (unsigned)run);
    }
    if (dims > d->dims) {
        match_emu_fail("%s: a %u-D command (%u x %u x %u B) on a %u-D DMA", d->name, (unsigned)dims, (unsigned)planes,
                       (unsigned)rows, (unsigned)run, (unsigned)d->dims);
    }
    bytes = run * rows * planes;
    if (d->max != 0u && bytes > d->max) {
        match_emu_fail("%s: a command of %u B, more than the DMA's %u B", d->name, (unsigned)bytes, (unsigned)d->max);
    }
    dst_span = (uint64_t)(planes - 1u) * dst_ps + (uint64_t)(rows - 1u) * dst_rs + run;
    src_span = (uint64_t)(planes - 1u) * src_ps + (uint64_t)(rows - 1u) * src_rs + run;
    c.dst = (uint8_t *)dst;
    c.src = (const uint8_t *)src;
    c.run = run;
    c.rows = rows;
    c.planes = planes;
    c.dst_rs = dst_rs;
    c.src_rs = src_rs;
    c.dst_ps = dst_ps;
    c.src_ps = src_ps;
    c.dst_mem = emu_mem_of(dst, (uint32_t)dst_span);
    c.src_mem = emu_mem_of(src, (uint32_t)src_span);
    /* One side in each memory of one of the DMA's pairs; constants
     * (outside every emulated memory) may only be read, into a compute memory. */
    ok = 0;
    for (i = 0; i < d->n_pairs; i++) {
        int a = d->pairs[i][0], b = d->pairs[i][1];
        if ((c.dst_mem == a && c.src_mem == b) || (c.dst_mem == b && c.src_mem == a) ||
            ((c.dst_mem == a || c.dst_mem == b) && c.src_mem < 0 && emu_mems[c.dst_mem].d.compute)) {
            ok = 1;
        }
    }
    if (c.src_mem >= 0 && emu_mems[c.src_mem].d.write_only) {
        ok = 0; /* e.g. weight memories: only written */
    }
    if (!ok) {
        match_emu_fail("%s: from %s to %s", d->name, c.src_mem < 0 ? "constant data" : emu_mems[c.src_mem].d.name,
                       c.dst_mem < 0 ? "outside the emulated memories" : emu_mems[c.dst_mem].d.name);
    }
    emu_rows(&c, 1, OP_CHECK, "a DMA command's destination");
    emu_rows(&c, 0, OP_CHECK, "a DMA command's source");
    /* Pending: the destination poisoned until the wait, the source read. */
    emu_rows(&c, 1, OP_PEND, NULL);
    emu_rows(&c, 0, OP_READ, NULL);
    if (emu_qlen[ch] == emu_qcap[ch]) {
        int cap = emu_qcap[ch] == 0 ? 64 : emu_qcap[ch] * 2;
        emu_cmd_t *q = (emu_cmd_t *)realloc(emu_queue[ch], sizeof(emu_cmd_t) * (size_t)cap);
        if (q == NULL) {
            match_emu_fail("out of host memory for the DMA queue");
        }
        emu_queue[ch] = q;
        emu_qcap[ch] = cap;
    }
    emu_queue[ch][emu_qlen[ch]++] = c;
    if (L != NULL) {
        if ((c.dst_mem >= 0 && emu_mems[c.dst_mem].d.off_chip) ||
            (c.src_mem >= 0 && emu_mems[c.src_mem].d.off_chip)) {
            L->l3_cmds++;
            L->l3_bytes += bytes;
        } else if (emu_mems[c.dst_mem].d.compute) {
            L->in_cmds++;
            L->in_bytes += bytes;
        } else {
            L->out_cmds++;
            L->out_bytes += bytes;
        }
    }
}

void match_emu_dma_wait(int ch)
{
    int i;
    if (ch < 0 || ch >= MATCH_EMU_CHANNELS) {
        match_emu_fail("a DMA wait on channel %d (0..%d)", ch, MATCH_EMU_CHANNELS - 1);
    }
    for (i = 0; i < emu_qlen[ch]; i++) {
        const emu_cmd_t *c = &emu_queue[ch][i];
        uint32_t p, r;
        emu_rows(c, 1, OP_UNPEND, NULL);
        for (p = 0; p < c->planes; p++) {
            for (r = 0; r < c->rows; r++) {
                memcpy(c->dst + (size_t)p * c->dst_ps + (size_t)r * c->dst_rs,
                       c->src + (size_t)p * c->src_ps + (size_t)r * c->src_rs, c->run);
            }
        }
        emu_rows(c, 0, OP_UNREAD, NULL);
    }
    emu_qlen[ch] = 0;
}

static int emu_pending(void)
{
    int ch, n = 0;
    for (ch = 0; ch < MATCH_EMU_CHANNELS; ch++) {
        n += emu_qlen[ch];
    }
    return n;
}

/* The pending commands that must finish within their layer: all but those
 * to or from an off-chip memory (a prefetch of later layers' weights from
 * L3 runs on across layers until its wait). */
static int emu_pending_on_chip(void)
{
    int ch, i, n = 0;
    for (ch = 0; ch < MATCH_EMU_CHANNELS; ch++) {
        for (i = 0; i < emu_qlen[ch]; i++) {
            const emu_cmd_t *c = &emu_queue[ch][i];
            int off_chip = (c->dst_mem >= 0 && emu_mems[c->dst_mem].d.off_chip) ||
                           (c->src_mem >= 0 && emu_mems[c->src_mem].d.off_chip);
            n += !off_chip;
        }
    }
    return n;
}

/* -------------------------------------------------------- allocation */

static int emu_mem_named(const char *memory)
{
    int m;
    for (m = 0; m < emu_n_mems; m++) {
        if (memory != NULL && strcmp(memory, emu_mems[m].d.name) == 0) {
            return m;
        }
    }
    match_emu_fail("no memory named '%s'", memory == NULL ? "(null)" : memory);
    return -1;
}

/* A stack per memory: buffers are freed in reverse order (match_emu_free's
 * `fn` names the platform's function in its messages). */
void *match_emu_malloc(const char *memory, uint32_t bytes)
{
    int m = emu_mem_named(memory);
    emu_mem_t *mem = &emu_mems[m];
    uint32_t at = (mem->used + 15u) & ~15u, i;
    if (bytes == 0u) {
        bytes = 1u;
    }
    if (at > mem->d.size || bytes > mem->d.size - at) {
        match_emu_fail("%s is full: %u B requested, %u B in use of %u B usable", mem->d.name, (unsigned)bytes,
                       (unsigned)mem->used, (unsigned)mem->d.size);
    }
    for (i = 0; i < bytes; i++) {
        mem->d.state[at + i] = ST_ALLOC;
        mem->d.reads[at + i] = 0;
    }
    mem->used = at + bytes;
    /* Compute memories stay poisoned outside the current tile buffers. */
    if (!mem->d.compute) {
        EMU_UNPOISON(mem->d.base + at, bytes);
    }
    return mem->d.base + at;
}

void match_emu_free(const char *fn, const char *memory, void *buffer, uint32_t bytes)
{
    int m = emu_mem_named(memory);
    emu_mem_t *mem = &emu_mems[m];
    uint32_t at, i;
    if (bytes == 0u) {
        bytes = 1u;
    }
    if (emu_mem_of(buffer, bytes) != m) {
        match_emu_fail("%s: the buffer is not in %s", fn, mem->d.name);
    }
    at = emu_off(m, buffer);
    if (at + bytes != mem->used) {
        match_emu_fail("%s: %u B at %s+%u is not the last allocation", fn, (unsigned)bytes, mem->d.name,
                       (unsigned)at);
    }
    for (i = 0; i < bytes; i++) {
        if (mem->d.state[at + i] & ST_PEND || mem->d.reads[at + i] != 0) {
            match_emu_fail("%s: %s+%u is used by a pending DMA command", fn, mem->d.name, (unsigned)(at + i));
        }
        mem->d.state[at + i] = 0;
    }
    mem->used = at;
    EMU_POISON(mem->d.base + at, bytes);
}

/* ------------------------------------------------------- layers, buffers */

static int emu_kept_now(const uint8_t *p)
{
    int k;
    for (k = 0; k < emu_n_keep_now; k++) {
        if (p >= emu_keep_now[k].base && p < emu_keep_now[k].base + emu_keep_now[k].bytes) {
            return 1;
        }
    }
    return 0;
}

/* The end of a layer: its tile buffers become inaccessible (poisoned) and
 * their contents are scrubbed, except the bytes the layer declared live
 * for the next layer (match_emu_keep); what the layer before kept and
 * this one did not keep again is scrubbed too. */
static void emu_clear_buffers(void)
{
    int b, m, k;
    uint32_t i;
    for (k = 0; k < emu_n_keep_prev; k++) {
        /* Poisoned since the last layer's end unless this layer registered
         * it again: reachable for the scrub, poisoned after (as every tile
         * buffer at a layer's end). */
        EMU_UNPOISON(emu_keep_prev[k].base, emu_keep_prev[k].bytes);
        for (i = 0; i < emu_keep_prev[k].bytes; i++) {
            if (!emu_kept_now(emu_keep_prev[k].base + i)) {
                emu_keep_prev[k].base[i] = EMU_SCRUB;
            }
        }
        EMU_POISON(emu_keep_prev[k].base, emu_keep_prev[k].bytes);
    }
    for (b = 0; b < emu_n_bufs; b++) {
        m = emu_mem_of(emu_bufs[b].base, emu_bufs[b].bytes);
        if (m >= 0) {
            uint32_t o = emu_off(m, emu_bufs[b].base);
            EMU_UNPOISON(emu_bufs[b].base, emu_bufs[b].bytes);
            for (i = 0; i < emu_bufs[b].bytes; i++) {
                emu_mems[m].d.state[o + i] &= (uint8_t)~ST_BUF;
                if (!emu_kept_now(emu_bufs[b].base + i)) {
                    emu_bufs[b].base[i] = EMU_SCRUB;
                }
            }
            EMU_POISON(emu_bufs[b].base, emu_bufs[b].bytes);
        }
    }
    emu_n_bufs = 0;
    for (k = 0; k < emu_n_keep_now; k++) {
        emu_keep_prev[k] = emu_keep_now[k];
    }
    emu_n_keep_prev = emu_n_keep_now;
    emu_n_keep_now = 0;
}

void match_emu_layer(int32_t index, const char *name, uint64_t modeled_cycles)
{
    int n = index >= 0 ? emu_pending_on_chip() : emu_pending();
    if (n != 0) {
        match_emu_fail("the layer ended with %d DMA command(s) pending (missing wait)", n);
    }
    emu_clear_buffers();
    if (index < 0) {
        snprintf(emu_cur_name, sizeof emu_cur_name, "(after the last layer)");
        emu_cur = -1;
        return;
    }
    snprintf(emu_cur_name, sizeof emu_cur_name, "%s", name == NULL ? "?" : name);
    if (index == 0) {
        emu_runs++;
    }
    if (index >= emu_cap_layers) {
        int32_t cap = index + 16;
        emu_layer_t *l = (emu_layer_t *)realloc(emu_layers, sizeof(emu_layer_t) * (size_t)cap);
        if (l == NULL) {
            match_emu_fail("out of host memory for the counters");
        }
        emu_layers = l;
        emu_cap_layers = cap;
    }
    while (emu_n_layers <= index) {
        memset(&emu_layers[emu_n_layers], 0, sizeof(emu_layer_t));
        emu_n_layers++;
    }
    emu_cur = index;
    snprintf(emu_layers[index].name, sizeof emu_layers[index].name, "%s", emu_cur_name);
    emu_layers[index].cycles += modeled_cycles;
}

void match_emu_buffer(void *base, uint32_t bytes)
{
    int m = emu_mem_of(base, bytes);
    uint32_t o, i;
    if (m < 0 || !emu_mems[m].d.compute) {
        match_emu_fail("a tile buffer of %u B outside the compute memories", (unsigned)bytes);
    }
    if (emu_n_bufs == EMU_MAX_BUFS) {
        match_emu_fail("more than %d tile buffers", EMU_MAX_BUFS);
    }
    o = emu_off(m, base);
    for (i = 0; i < bytes; i++) {
        uint8_t s = emu_mems[m].d.state[o + i];
        if ((s & ST_ALLOC) == 0) {
            match_emu_fail("the tile buffer at %s+%u (%u B) is outside the allocated arena", emu_mems[m].d.name,
                           (unsigned)o, (unsigned)bytes);
        }
        if (s & ST_BUF) {
            match_emu_fail("the tile buffer at %s+%u (%u B) overlaps another tile buffer", emu_mems[m].d.name,
                           (unsigned)o, (unsigned)bytes);
        }
    }
    for (i = 0; i < bytes; i++) {
        emu_mems[m].d.state[o + i] |= ST_BUF;
    }
    emu_bufs[emu_n_bufs].base = (uint8_t *)base;
    emu_bufs[emu_n_bufs].bytes = bytes;
    emu_n_bufs++;
    EMU_UNPOISON(base, bytes);
}

void match_emu_keep(void *base, uint32_t bytes)
{
    int b;
    for (b = 0; b < emu_n_bufs; b++) {
        if (emu_bufs[b].base <= (uint8_t *)base && (uint8_t *)base + bytes <= emu_bufs[b].base + emu_bufs[b].bytes) {
            break;
        }
    }
    if (b == emu_n_bufs) {
        match_emu_fail("a kept buffer of %u B that is not inside a tile buffer of the layer", (unsigned)bytes);
    }
    if (emu_n_keep_now == EMU_MAX_BUFS) {
        match_emu_fail("more than %d kept buffers", EMU_MAX_BUFS);
    }
    emu_keep_now[emu_n_keep_now].base = (uint8_t *)base;
    emu_keep_now[emu_n_keep_now].bytes = bytes;
    emu_n_keep_now++;
}

/* The registered tile buffer starting at p, or -1. */
static int emu_buffer_at(const void *p)
{
    int b;
    for (b = 0; b < emu_n_bufs; b++) {
        if (emu_bufs[b].base == (const uint8_t *)p) {
            return b;
        }
    }
    return -1;
}

void match_emu_tile(const void *in, const void *w, void *out)
{
    const void *ptrs[3];
    static const char *const what[3] = {"the tile's input buffer", "the tile's weight buffer",
                                        "the tile's output buffer"};
    int b[3], i, j;
    emu_layer_t *L = emu_counters();
    ptrs[0] = in;
    ptrs[1] = w;
    ptrs[2] = out;
    for (i = 0; i < 3; i++) {
        b[i] = -1;
        if (ptrs[i] == NULL) {
            continue;
        }
        b[i] = emu_buffer_at(ptrs[i]);
        if (b[i] < 0) {
            match_emu_fail("%s is not a tile buffer of the layer", what[i]);
        }
        emu_check(emu_mem_of(emu_bufs[b[i]].base, emu_bufs[b[i]].bytes), emu_bufs[b[i]].base, emu_bufs[b[i]].bytes,
                  i == 2, what[i]);
        for (j = 0; j < i; j++) {
            if (b[j] == b[i]) {
                match_emu_fail("%s and %s are the same buffer", what[j], what[i]);
            }
        }
    }
    if (L != NULL) {
        L->tiles++;
    }
}

void match_emu_kernel(const char *kernel, const void *in, uint32_t in_bytes, const void *w, uint32_t w_bytes,
                      void *out, uint32_t out_bytes)
{
    const void *ptrs[3];
    uint32_t n[3];
    char what[96];
    static const char *const role[3] = {"input", "weights", "output"};
    int i, m;
    emu_layer_t *L = emu_counters();
    ptrs[0] = in;
    ptrs[1] = w;
    ptrs[2] = out;
    n[0] = in_bytes;
    n[1] = w_bytes;
    n[2] = out_bytes;
    for (i = 0; i < 3; i++) {
        if (n[i] == 0u) {
            continue;
        }
        snprintf(what, sizeof what, "kernel %s's %s (%u B)", kernel == NULL ? "?" : kernel, role[i], (unsigned)n[i]);
        m = ptrs[i] == NULL ? -1 : emu_mem_of(ptrs[i], n[i]);
        if (m < 0 || !emu_mems[m].d.compute) {
            match_emu_fail("%s is not in %s", what, emu_compute_names);
        }
        emu_check(m, (const uint8_t *)ptrs[i], n[i], i == 2, what);
    }
    if (L != NULL) {
        L->kernels++;
    }
}

void match_emu_access(const char *kernel, const char *role, const void *p, uint32_t bytes, int write)
{
    char what[96];
    int m;
    if (bytes == 0u) {
        return;
    }
    snprintf(what, sizeof what, "kernel %s's %s (%u B)", kernel == NULL ? "?" : kernel, role, (unsigned)bytes);
    m = p == NULL ? -1 : emu_mem_of(p, bytes);
    if (m < 0 || !emu_mems[m].d.compute) {
        match_emu_fail("%s is not in %s", what, emu_compute_names);
    }
    emu_check(m, (const uint8_t *)p, bytes, write, what);
}

/* ------------------------------------------------------------- services */

static clock_t emu_t0;

void match_emu_timer_start(void)
{
    emu_t0 = clock();
}

uint32_t match_emu_timer_stop(void)
{
    return (uint32_t)(clock() - emu_t0);
}

void match_emu_init(const char *target, const match_emu_mem_t *mems, int n)
{
    int m;
    size_t len = 0;
    emu_target = target == NULL ? "?" : target;
    if (n < 0 || n > MATCH_EMU_MAX_MEMS) {
        match_emu_fail("%d memories (at most %d)", n, MATCH_EMU_MAX_MEMS);
    }
    emu_n_mems = n;
    emu_compute_names[0] = '\0';
    for (m = 0; m < n; m++) {
        emu_mem_t *mem = &emu_mems[m];
        mem->d = mems[m];
        mem->used = 0;
        if (mem->d.base == NULL || mem->d.state == NULL || mem->d.reads == NULL) {
            match_emu_fail("memory %s has no storage (MATCH_EMU_STORAGE)", mem->d.name);
        }
        memset(mem->d.state, 0, mem->d.size);
        memset(mem->d.reads, 0, mem->d.size);
        /* Nothing is accessible until it is allocated. */
        EMU_POISON(mem->d.base, mem->d.size);
        if (mem->d.compute) {
            int last = 1, k;
            for (k = m + 1; k < n; k++) {
                last = last && !mems[k].compute;
            }
            len = strlen(emu_compute_names);
            snprintf(emu_compute_names + len, sizeof emu_compute_names - len, "%s%s",
                     len == 0 ? "" : (last ? " or " : ", "), mem->d.name);
        }
    }
    emu_n_bufs = 0;
    emu_cur = -1;
    emu_runs = 0;
    emu_n_layers = 0;
    snprintf(emu_cur_name, sizeof emu_cur_name, "(before the first layer)");
}

/* The counters table (README.md): a header line, then one line per layer. */
static void emu_write_counters(FILE *f)
{
    int32_t i;
    fprintf(f, "# match counters v1: target %s, runs %u (sums over the runs)\n", emu_target, (unsigned)emu_runs);
    fprintf(f, "%-5s %-32s %12s %8s %10s %8s %10s %8s %10s %8s %8s\n", "layer", "name", "cycles", "dma_in",
            "in_bytes", "dma_out", "out_bytes", "dma_l3", "l3_bytes", "calls", "kernels");
    for (i = 0; i < emu_n_layers; i++) {
        const emu_layer_t *l = &emu_layers[i];
        fprintf(f, "%-5ld %-32s %12llu %8llu %10llu %8llu %10llu %8llu %10llu %8llu %8llu\n", (long)i,
                l->name[0] ? l->name : "-", (unsigned long long)l->cycles, (unsigned long long)l->in_cmds,
                (unsigned long long)l->in_bytes, (unsigned long long)l->out_cmds, (unsigned long long)l->out_bytes,
                (unsigned long long)l->l3_cmds, (unsigned long long)l->l3_bytes, (unsigned long long)l->tiles,
                (unsigned long long)l->kernels);
    }
}

void match_emu_deinit(void)
{
    const char *path = getenv("MATCH_COUNTERS");
    int ch;
    if (emu_pending() != 0) {
        match_emu_fail("the run ended with %d DMA command(s) pending (missing wait)", emu_pending());
    }
    if (path != NULL && path[0] != '\0') {
        if (strcmp(path, "-") == 0) {
            emu_write_counters(stderr);
        } else {
            FILE *f = fopen(path, "w");
            if (f == NULL) {
                fprintf(stderr, "%s emulation: cannot write the counters to %s\n", emu_target, path);
                exit(1);
            }
            emu_write_counters(f);
            if (fclose(f) != 0) {
                fprintf(stderr, "%s emulation: cannot write the counters to %s\n", emu_target, path);
                exit(1);
            }
        }
    }
    for (ch = 0; ch < MATCH_EMU_CHANNELS; ch++) {
        free(emu_queue[ch]);
        emu_queue[ch] = NULL;
        emu_qlen[ch] = emu_qcap[ch] = 0;
    }
    free(emu_layers);
    emu_layers = NULL;
    emu_n_layers = emu_cap_layers = 0;
}

#else
/* Not a platform's emulation: nothing (ISO C wants a declaration). */
typedef int match_emu_unused_t;
#endif /* MATCH_EMU_IMPL */
