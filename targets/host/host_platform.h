/*
 * host platform: the functions named in targets/host.hwm's api block.
 * Tiny on purpose. The host runs every layer with the portable kernels
 * (match_kernels.c); these only start and stop the program and time it.
 *
 * Built hosted by default; with -DMATCH_FREESTANDING it needs no C library
 * (the timer then reads 0).
 */
#ifndef HOST_PLATFORM_H
#define HOST_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

void host_init(void);
void host_deinit(void);
/* Starts the timer; host_timer_stop returns the ticks (clock()) since. */
void host_timer_start(void);
uint32_t host_timer_stop(void);

#endif /* HOST_PLATFORM_H */
