/*
 * Stub of the GAP SDK's bsp/ram.h (external RAM: HyperRAM / OctaSPI RAM),
 * ours, declarations only, for type-checking the GAP9 device adapter.
 *
 * Source: GreenWaves-Technologies/gap_sdk rtos/pmsis/bsp include/bsp/ram.h
 * (every signature below is that header's; the SDK defines most of them
 * static inline over a per-driver function table, here plain prototypes).
 */
#ifndef MATCH_STUB_BSP_RAM_H
#define MATCH_STUB_BSP_RAM_H

#include "pmsis.h"

/* ram.h: "RAM cluster copy request structure ... must be kept alive until
 * the copy is finished." Members opaque. */
typedef struct pi_cl_ram_req_s {
    struct pi_device *device;
    void *addr;
    uint32_t pi_ram_addr;
    uint32_t size;
    int32_t stride;
    uint32_t length;
    pi_task_t event;
    struct pi_cl_ram_req_s *next;
    uint8_t done;
    unsigned char cid;
    unsigned char ext2loc;
    unsigned char is_2d;
} pi_cl_ram_req_t;

/* ram.h: cluster-side allocation requests, each alive until its wait. */
typedef struct pi_cl_ram_alloc_req_s {
    struct pi_device *device;
    uint32_t result;
    uint32_t size;
    pi_task_t event;
    uint8_t done;
    char cid;
    char error;
} pi_cl_ram_alloc_req_t;
typedef struct pi_cl_ram_free_req_s {
    struct pi_device *device;
    uint32_t result;
    uint32_t size;
    uint32_t chunk;
    pi_task_t event;
    uint8_t done;
    char cid;
    char error;
} pi_cl_ram_free_req_t;

int32_t pi_ram_open(struct pi_device *device);
void pi_ram_close(struct pi_device *device);

/* FC side, blocking: RAM address `pi_ram_addr`, chip memory `data`. */
void pi_ram_read(struct pi_device *device, uint32_t pi_ram_addr, void *data, uint32_t size);
void pi_ram_write(struct pi_device *device, uint32_t pi_ram_addr, void *data, uint32_t size);
/* 2-D: `size` bytes in all, `length` bytes per line, lines `stride` bytes
 * apart on the RAM side; the chip side is contiguous. */
void pi_ram_read_2d(struct pi_device *device, uint32_t pi_ram_addr, void *data, uint32_t size,
                    uint32_t stride, uint32_t length);
void pi_ram_write_2d(struct pi_device *device, uint32_t pi_ram_addr, void *data, uint32_t size,
                     uint32_t stride, uint32_t length);

/* FC side, asynchronous: `task` is notified at the end. */
void pi_ram_read_async(struct pi_device *device, uint32_t pi_ram_addr, void *data, uint32_t size,
                       pi_task_t *task);
void pi_ram_write_async(struct pi_device *device, uint32_t pi_ram_addr, void *data, uint32_t size,
                        pi_task_t *task);
void pi_ram_read_2d_async(struct pi_device *device, uint32_t pi_ram_addr, void *data, uint32_t size,
                          uint32_t stride, uint32_t length, pi_task_t *task);
void pi_ram_write_2d_async(struct pi_device *device, uint32_t pi_ram_addr, void *data, uint32_t size,
                           uint32_t stride, uint32_t length, pi_task_t *task);

/* Cluster side: a remote request to the FC; wait with the _wait calls. */
void pi_cl_ram_read(struct pi_device *device, uint32_t pi_ram_addr, void *addr, uint32_t size,
                    pi_cl_ram_req_t *req);
void pi_cl_ram_write(struct pi_device *device, uint32_t pi_ram_addr, void *addr, uint32_t size,
                     pi_cl_ram_req_t *req);
void pi_cl_ram_read_2d(struct pi_device *device, uint32_t pi_ram_addr, void *addr, uint32_t size,
                       uint32_t stride, uint32_t length, pi_cl_ram_req_t *req);
void pi_cl_ram_write_2d(struct pi_device *device, uint32_t pi_ram_addr, void *addr, uint32_t size,
                        uint32_t stride, uint32_t length, pi_cl_ram_req_t *req);
void pi_cl_ram_alloc(struct pi_device *device, uint32_t size, pi_cl_ram_alloc_req_t *req);
/* Returns 0, the RAM address in *addr; -1 when the RAM is full. */
int32_t pi_cl_ram_alloc_wait(pi_cl_ram_alloc_req_t *req, uint32_t *addr);
void pi_cl_ram_free(struct pi_device *device, uint32_t chunk, uint32_t size, pi_cl_ram_free_req_t *req);
int32_t pi_cl_ram_free_wait(pi_cl_ram_free_req_t *req);
void pi_cl_ram_read_wait(pi_cl_ram_req_t *req);
void pi_cl_ram_write_wait(pi_cl_ram_req_t *req);

#endif /* MATCH_STUB_BSP_RAM_H */
