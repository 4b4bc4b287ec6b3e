/*
 * match_emu: the target-neutral core of MATCH's host emulations of a
 * target's memories, DMAs and layers (written by matchc into every project
 * whose platform folder includes this header, with match_memories.h, the
 * usable bytes of each memory of the .hwm). A platform file describes its
 * memories (name, usable bytes, which are compute memories, their static
 * storage) and DMAs (memory pairs, dimensions, maximum command bytes),
 * defines MATCH_EMU_IMPL and includes match_emu.c (one translation unit:
 * every build that compiles the platform file, the Makefile's or a device
 * build's, gets the core without listing it; compiled alone, match_emu.c
 * is empty) and wraps these functions under the names its .hwm's api
 * block and DMAs give.
 *
 * At the end of each layer its tile buffers are scrubbed (a fixed byte
 * pattern), except what the layer declared live for the next one
 * (match_emu_keep, the api role `keep`): a layer that reads a buffer of
 * the compute memory it neither loaded nor was handed by its predecessor
 * computes on the pattern.
 *
 * Memories are emulated arenas (static storage, MATCH_EMU_STORAGE) of the
 * usable bytes the platform gives (from match_memories.h: a .hwm with a bigger
 * memory gets a bigger arena), handed out in stack order by
 * match_emu_malloc. Each byte has a state: allocated, a tile buffer of the
 * current layer (compute memories: only those are accessible), the
 * destination of a pending DMA command; and a count of pending commands
 * reading it.
 *
 * DMA (docs/hwm.md, "DMA functions"): match_emu_dma_start checks and
 * queues one command of `planes` x `rows` x `run` bytes on a channel; the
 * copy happens at match_emu_dma_wait(channel). Until then the destination
 * is poisoned: AddressSanitizer manual poisoning when built with ASan, and
 * in every build the per-byte pending state that the DMA, tile and kernel
 * checks consult.
 *
 * Checks (each aborts with a message naming the current layer): a DMA or
 * kernel touching bytes of a compute memory outside the current layer's
 * tile buffers, or bytes of another memory outside the allocated arenas; a
 * command with more dimensions or bytes than its DMA moves, or between
 * memories it does not link; reading a pending DMA destination, or writing
 * bytes a pending command reads or writes; overlapping tile buffers; a
 * layer ending with pending commands (except commands to or from an
 * off-chip memory: a prefetch of later layers' weights may run on until
 * its wait) or a run ending with any.
 *
 * Counters per layer (match_emu_layer starts one): DMA commands and bytes
 * into the compute memories, back from them, and to or from off-chip
 * memories; tile calls (match_emu_tile); unit kernel calls
 * (match_emu_kernel); the cost model's modeled cycles. match_emu_deinit
 * prints them as the "# match counters v1" table when the environment
 * variable MATCH_COUNTERS names a file ("-": standard error).
 */
#ifndef MATCH_EMU_H
#define MATCH_EMU_H

#include <stddef.h>
#include <stdint.h>

/* An emulated memory, as the platform describes it. */
typedef struct {
    const char *name; /* as in the .hwm */
    uint32_t size;    /* usable bytes (match_memories.h) */
    int compute;      /* a compute memory: only the layer's tile buffers are accessible */
    int off_chip;     /* commands to or from it count as L3 transfers */
    int write_only;   /* DMA commands may only write it (weight memories) */
    /* Its storage (MATCH_EMU_STORAGE): the arena, each byte's state and
     * its count of pending commands reading it. */
    uint8_t *base, *state, *reads;
} match_emu_mem_t;

/* Static storage for a memory of `bytes` usable bytes: `id`_base,
 * `id`_state and `id`_reads. Static, so that the arenas lie in the program
 * image as on a device's fixed memory map (device doubles that rebuild
 * pointers from 32-bit addresses rely on it); one spare byte so that an
 * absent memory (0 B) is still a valid array. */
#define MATCH_EMU_STORAGE(id, bytes) \
    static uint8_t id##_base[(bytes) + 1u], id##_state[(bytes) + 1u], id##_reads[(bytes) + 1u]
#define MATCH_EMU_ARENA(id) id##_base, id##_state, id##_reads

#define MATCH_EMU_MAX_MEMS 8
#define MATCH_EMU_CHANNELS 8

/* A DMA: the memories (indices in the platform's table) on each side of
 * its pairs, its dimensions and its maximum command bytes (0: no limit). */
typedef struct {
    const char *name;
    int n_pairs;
    int pairs[MATCH_EMU_MAX_MEMS][2];
    uint32_t dims, max;
} match_emu_dma_t;

/* Sets up the emulation of `target` (the name the messages and the
 * counters table give) with `n` memories: every arena empty, inaccessible. */
void match_emu_init(const char *target, const match_emu_mem_t *mems, int n);
/* Checks that no command is pending and writes the counters
 * (MATCH_COUNTERS). */
void match_emu_deinit(void);

/* Aborts with a message naming the current layer. */
void match_emu_fail(const char *fmt, ...);

void *match_emu_malloc(const char *memory, uint32_t bytes);
void match_emu_free(const char *fn, const char *memory, void *buffer, uint32_t bytes);

void match_emu_dma_start(const match_emu_dma_t *d, void *dst, const void *src, uint32_t run, uint32_t rows,
                         uint32_t dst_rs, uint32_t src_rs, uint32_t planes, uint32_t dst_ps, uint32_t src_ps,
                         int channel);
void match_emu_dma_wait(int channel);

/* The generated code's view of its layers (api roles layer, buffer, tile). */
void match_emu_layer(int32_t index, const char *name, uint64_t modeled_cycles);
void match_emu_buffer(void *base, uint32_t bytes);
/* Declares bytes inside a tile buffer of the current layer that the next
 * layer reads in place (inter-layer residency): at the end of the layer
 * they keep their contents; every other tile buffer byte is scrubbed. */
void match_emu_keep(void *base, uint32_t bytes);
void match_emu_tile(const void *in, const void *w, void *out);
/* Entry hook of the unit kernels: counts a kernel call of the current
 * layer and checks its buffers (in the layer's tile buffers of the compute
 * memories, not pending). */
void match_emu_kernel(const char *kernel, const void *in, uint32_t in_bytes, const void *w, uint32_t w_bytes,
                      void *out, uint32_t out_bytes);
/* A further buffer a unit kernel reads (and writes, when `write`), e.g. a
 * split C's accumulator: checked as match_emu_kernel checks its operands,
 * not counted. */
void match_emu_access(const char *kernel, const char *role, const void *p, uint32_t bytes, int write);

void match_emu_timer_start(void);
uint32_t match_emu_timer_stop(void);

#endif /* MATCH_EMU_H */
