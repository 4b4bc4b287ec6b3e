/*
 * Stub of the GAP SDK's pmsis.h for type-checking the GAP9 device adapter
 * (targets/gap9/device/) without the SDK. Ours: it only DECLARES public
 * names (those ../shared/HARDWARE.md lists, and the few more the adapter
 * needs: cluster close, cluster-side L2 allocation, perf counters, the
 * application entry), with the signatures of the public headers named
 * below. Nothing here is implemented; nothing links.
 *
 * Sources (GreenWaves-Technologies/gap_sdk, its pmsis_api):
 *   [device]   pmsis_api include/pmsis/device.h
 *   [fc_to_cl] pmsis_api include/pmsis/cluster/cluster_sync/fc_to_cl_delegate.h
 *   [cl_types] pmsis_api include/pmsis/cluster/cl_pmsis_types.h
 *   [cl_dma]   pmsis_api include/pmsis/cluster/dma/cl_dma.h
 *   [cl_team]  pmsis implementation headers (pi_cl_team_fork / _barrier, pi_core_id)
 *   [cl_alloc] pmsis_api include/pmsis/cluster/cl_malloc.h, pmsis l1/l2 malloc
 *   [perf]     pmsis_api include/pmsis/chips/.../perf.h (pi_perf_*)
 *
 * Struct members the adapter never touches are left out or stand in for
 * the SDK's private ones ("opaque" below): only the names and the
 * members the public documentation tells users to set are public.
 */
#ifndef MATCH_STUB_PMSIS_H
#define MATCH_STUB_PMSIS_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* ---- devices [device] ---- */

struct pi_device {
    void *config; /* [device]: set by pi_open_from_conf */
    void *data;   /* opaque */
    void *api;    /* opaque */
};
typedef struct pi_device pi_device_t;

/* [device] void pi_open_from_conf(struct pi_device *device, void *conf); */
void pi_open_from_conf(struct pi_device *device, void *conf);

/* ---- application entry (gap_sdk examples/pmsis/helloworld) ---- */

/* Starts the OS and runs `entry` as the main task. */
int pmsis_kickoff(void *entry);
/* Ends the application with `status`. */
void pmsis_exit(int status);

/* ---- FC tasks (pi_task_t, used by the _async calls) ---- */

typedef struct pi_task {
    uint32_t arg[4]; /* opaque */
    int done;        /* opaque */
} pi_task_t;

/* ---- cluster: open, tasks [fc_to_cl], [cl_types] ---- */

typedef enum {
    PI_CLUSTER_FLAGS_FORK_BASED = (0 << 0), /* [cl_types] */
    PI_CLUSTER_FLAGS_TASK_BASED = (1 << 0)
} pi_cluster_flags_e;

struct pi_cluster_conf {
    int device_type; /* [cl_types]: pi_device_e device_type (first member) */
    int id;          /* [cl_types]: cluster ID, from 0 */
    void *heap_start;
    uint32_t heap_size;
    void *event_kernel;
    pi_cluster_flags_e flags;
};

struct pi_cluster_task {
    void (*entry)(void *); /* [cl_types] */
    void *arg;
    void *stacks;
    uint32_t stack_size;       /* [cl_types]: the cluster controller's stack */
    uint32_t slave_stack_size; /* [cl_types]: each worker core's stack */
    int nb_cores;              /* [cl_types]: cores activated */
    pi_task_t *completion_callback;
    int stack_allocated;
    struct pi_cluster_task *next;
};
typedef struct pi_cluster_task pi_cluster_task_t;

/* [fc_to_cl] void pi_cluster_conf_init(struct pi_cluster_conf *conf); */
void pi_cluster_conf_init(struct pi_cluster_conf *conf);
/* [fc_to_cl] int pi_cluster_open(struct pi_device *device); */
int pi_cluster_open(struct pi_device *device);
/* [fc_to_cl] int pi_cluster_close(struct pi_device *device); */
int pi_cluster_close(struct pi_device *device);
/* [fc_to_cl] static inline struct pi_cluster_task *pi_cluster_task(
 *     struct pi_cluster_task *task, void (*entry)(void*), void *arg); */
struct pi_cluster_task *pi_cluster_task(struct pi_cluster_task *task, void (*entry)(void *), void *arg);
/* [fc_to_cl] int pi_cluster_send_task_to_cl(struct pi_device *device,
 *     struct pi_cluster_task *task); blocks until the task has run. */
int pi_cluster_send_task_to_cl(struct pi_device *device, struct pi_cluster_task *task);

/* ---- cluster team [cl_team] ---- */

/* Runs entry(arg) on nb_cores cores (the caller included) and returns
 * when all have returned. */
void pi_cl_team_fork(int nb_cores, void (*entry)(void *), void *arg);
void pi_cl_team_barrier(void);
/* The calling core's index in its cluster (0 = cluster controller). */
int pi_core_id(void);

/* ---- memory [cl_alloc] ---- */

/* pmsis: data placed in the cluster's L1 (TCDM); in the SDK a section
 * attribute, empty in this stub. */
#define PI_CL_L1

/* void *pi_cl_l1_malloc(struct pi_device *device, uint32_t size); */
void *pi_cl_l1_malloc(struct pi_device *device, uint32_t size);
/* void pi_cl_l1_free(struct pi_device *device, void *chunk, int size); */
void pi_cl_l1_free(struct pi_device *device, void *chunk, int size);
/* void *pi_l2_malloc(int size); void pi_l2_free(void *chunk, int size);
 * (the FC's allocator) */
void *pi_l2_malloc(int size);
void pi_l2_free(void *chunk, int size);

/* pmsis_api include/pmsis/cluster/cl_malloc.h: L2 allocations requested
 * from the cluster (remote calls to the FC), each request alive until its
 * wait. Members opaque. */
typedef struct pi_cl_alloc_req_s {
    void *result;
    int size;
    pi_task_t event;
    uint8_t done;
} pi_cl_alloc_req_t;
typedef struct pi_cl_free_req_s {
    void *chunk;
    int size;
    pi_task_t event;
    uint8_t done;
} pi_cl_free_req_t;
void pi_cl_l2_malloc(int size, pi_cl_alloc_req_t *req);
void *pi_cl_l2_malloc_wait(pi_cl_alloc_req_t *req);
void pi_cl_l2_free(void *chunk, int size, pi_cl_free_req_t *req);
void pi_cl_l2_free_wait(pi_cl_free_req_t *req);

/* ---- cluster DMA [cl_dma] ---- */

typedef enum {
    PI_CL_DMA_DIR_LOC2EXT = 0, /* [cl_dma]: cluster memory (L1) to external (L2) */
    PI_CL_DMA_DIR_EXT2LOC = 1  /* [cl_dma]: external (L2) to cluster memory (L1) */
} pi_cl_dma_dir_e;

/* [cl_dma]: "must be instantiated once for each copy and must be kept
 * alive until the copy is finished". Members opaque. */
typedef struct pi_cl_dma_cmd_s {
    uint32_t id;
    struct pi_cl_dma_cmd_s *next;
} pi_cl_dma_cmd_t;

/* [cl_dma] 1-D copy of `size` bytes; ext = L2 address, loc = L1 address. */
void pi_cl_dma_cmd(uint32_t ext, uint32_t loc, uint32_t size, pi_cl_dma_dir_e dir, pi_cl_dma_cmd_t *cmd);
/* [cl_dma] 2-D copy: `size` bytes in all; the EXTERNAL side is strided
 * (`length` bytes per line, lines `stride` bytes apart), the local (L1)
 * side is contiguous. */
void pi_cl_dma_cmd_2d(uint32_t ext, uint32_t loc, uint32_t size, uint32_t stride, uint32_t length,
                      pi_cl_dma_dir_e dir, pi_cl_dma_cmd_t *cmd);
/* [cl_dma] waits for one command (frees its hardware counter). */
void pi_cl_dma_cmd_wait(pi_cl_dma_cmd_t *cmd);
/* [cl_dma] static inline void pi_cl_dma_wait(void *copy); (copy structures) */
void pi_cl_dma_wait(void *copy);

/* ---- performance counters [perf] ---- */

/* [perf]: the event enum; the value here is the stub's own, the adapter
 * only uses the name (pi_perf_conf(1 << PI_PERF_CYCLES)). */
typedef enum { PI_PERF_CYCLES = 0 } pi_perf_event_e;
void pi_perf_conf(unsigned int events);
void pi_perf_reset(void);
void pi_perf_start(void);
void pi_perf_stop(void);
unsigned int pi_perf_read(int id);

/* ---- console: pmsis.h includes the SDK's libc stdio ---- */

int printf(const char *format, ...);
int vprintf(const char *format, va_list ap);

#endif /* MATCH_STUB_PMSIS_H */
