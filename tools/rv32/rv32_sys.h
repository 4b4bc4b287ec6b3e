/* Freestanding support for rv32imc programs run under qemu-user: file
 * I/O through Linux system calls, a few output helpers, and the stack
 * high-water mark painted by crt0.S. No libc anywhere. */
#ifndef RV32_SYS_H
#define RV32_SYS_H

#include <stddef.h>
#include <stdint.h>

/* Returns a file descriptor, or a negative errno. */
int rv32_open_read(const char *path);
int rv32_open_write(const char *path); /* create or truncate, mode 0644 */
/* Returns the byte count (0 at end of file), or a negative errno. */
long rv32_read(int fd, void *buf, size_t len);
long rv32_write(int fd, const void *buf, size_t len);
int rv32_close(int fd);
void rv32_exit(int code) __attribute__((noreturn));

/* Reads exactly `len` bytes and checks that the file has no more.
 * Returns 0, or -1 (message on stderr). */
int rv32_read_file(const char *path, void *buf, size_t len);
/* Writes `len` bytes to a new or truncated file. Returns 0 or -1. */
int rv32_write_file(const char *path, const void *buf, size_t len);

/* stderr output (fd 2). */
void rv32_puts(const char *s);
void rv32_put_u32(uint32_t v);

/* Bytes of crt0.S's stack that were written since start-up. */
uint32_t rv32_stack_high_water(void);
uint32_t rv32_stack_size(void);

#endif
