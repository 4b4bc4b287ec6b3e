/*
 * A test double, not an SDK: what the GAP9 device adapter's cluster
 * kernels (targets/gap9/device/gap9_device_units.c) need from PMSIS to run
 * on the host, so that tests/tests/device_adapter.rs can check their
 * work split over the 8 workers bit for bit against the emulation.
 *
 * pi_cl_team_fork runs the entry once per worker, in reverse order (a
 * worker that read another's results before they exist would differ from
 * the emulation). The NE16 driver's double is gap9_ne16_double.c.
 */
#include <stdio.h>
#include <stdlib.h>

#include "gap9_device.h"

static int mock_core;

int pi_core_id(void)
{
    return mock_core;
}

void pi_cl_team_fork(int nb_cores, void (*entry)(void *), void *arg)
{
    int c;
    if (nb_cores != GAP9_CL_CORES) {
        fprintf(stderr, "mock pi_cl_team_fork: %d cores\n", nb_cores);
        abort();
    }
    for (c = nb_cores - 1; c >= 0; c--) {
        mock_core = c;
        entry(arg);
    }
    /* Outside a fork: the cluster controller (core 8 on GAP9). */
    mock_core = GAP9_CL_CORES;
}

void pi_cl_team_barrier(void)
{
    /* Workers run one after the other here: a barrier inside a kernel
     * would deadlock on silicon order but not here, so refuse it. */
    fprintf(stderr, "mock pi_cl_team_barrier: the cluster kernels do not use barriers\n");
    abort();
}

void gap9_device_fail(const char *kernel, const char *layer, const char *what)
{
    fprintf(stderr, "%s: layer %s: %s\n", kernel, layer != NULL ? layer : "?", what);
    abort();
}

/* gap9_device.c's, which this host build leaves out (its api functions are
 * the emulation's here). */
const ne16_dev_t *gap9_ne16_dev(void)
{
    return ne16_pulp_get_dev();
}
