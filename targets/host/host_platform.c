/* host platform: see host_platform.h. */
#include "host_platform.h"

#ifndef MATCH_FREESTANDING
#include <time.h>

static clock_t host_t0;

void host_timer_start(void)
{
    host_t0 = clock();
}

uint32_t host_timer_stop(void)
{
    return (uint32_t)(clock() - host_t0);
}
#else
void host_timer_start(void)
{
}

uint32_t host_timer_stop(void)
{
    return 0;
}
#endif

void host_init(void)
{
}

void host_deinit(void)
{
}
