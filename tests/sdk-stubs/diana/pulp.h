/*
 * Stub of the PULP runtime's pulp.h as DIANA's runtime uses it, ours,
 * declarations only: console output, the L2 allocator and the performance
 * counters.
 *
 * Source: pulp-platform/pulp-rt (rt/rt_alloc.h: rt_alloc / rt_free and the
 * rt_alloc_e kinds; rt/rt_perf.h: rt_perf_t, rt_perf_init, rt_perf_conf,
 * rt_perf_start / _stop / _reset, rt_perf_read); DORY's Diana templates
 * call these (rt_perf_*) on DIANA.
 */
#ifndef MATCH_STUB_PULP_H
#define MATCH_STUB_PULP_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* pulp-rt: places data in L2 (a section attribute in the runtime). */
#define L2_DATA

typedef enum {
    RT_ALLOC_FC_CODE = 0,
    RT_ALLOC_FC_DATA = 1,
    RT_ALLOC_FC_RET_DATA = 2,
    RT_ALLOC_CL_CODE = 3,
    RT_ALLOC_CL_DATA = 4,
    RT_ALLOC_L2_CL_DATA = 5,
    RT_ALLOC_PERIPH = 6
} rt_alloc_e;

void *rt_alloc(rt_alloc_e flags, int size);
void rt_free(rt_alloc_e flags, void *chunk, int size);

/* rt_perf.h: counter events; the value here is the stub's own, the
 * adapter only uses the name. */
#define RT_PERF_CYCLES 0

typedef struct rt_perf_s {
    unsigned int events;
    unsigned int values[16];
} rt_perf_t;

void rt_perf_init(rt_perf_t *perf);
void rt_perf_conf(rt_perf_t *perf, unsigned int events);
void rt_perf_start(rt_perf_t *perf);
void rt_perf_stop(rt_perf_t *perf);
void rt_perf_reset(rt_perf_t *perf);
unsigned int rt_perf_read(int event);

int printf(const char *format, ...);
int vprintf(const char *format, va_list ap);

#endif /* MATCH_STUB_PULP_H */
