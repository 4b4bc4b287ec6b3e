/* Freestanding support for rv32imc programs under qemu-user; see
 * rv32_sys.h. Also the string functions GCC may emit calls to even with
 * -ffreestanding (struct copies, large zero-initialisations). */
#include "rv32_sys.h"

/* The bodies below are loops GCC would turn back into calls to
 * themselves. */
#pragma GCC optimize("no-tree-loop-distribute-patterns")

/* asm-generic system call numbers (RISC-V Linux). */
#define SYS_openat 56
#define SYS_close 57
#define SYS_read 63
#define SYS_write 64
#define SYS_exit_group 94

#define AT_FDCWD (-100)
#define O_RDONLY 0
#define O_WRONLY 01
#define O_CREAT 0100
#define O_TRUNC 01000

static long syscall3(long n, long a, long b, long c)
{
    register long a0 __asm__("a0") = a;
    register long a1 __asm__("a1") = b;
    register long a2 __asm__("a2") = c;
    register long a7 __asm__("a7") = n;
    __asm__ volatile("ecall" : "+r"(a0) : "r"(a1), "r"(a2), "r"(a7) : "memory");
    return a0;
}

static long syscall4(long n, long a, long b, long c, long d)
{
    register long a0 __asm__("a0") = a;
    register long a1 __asm__("a1") = b;
    register long a2 __asm__("a2") = c;
    register long a3 __asm__("a3") = d;
    register long a7 __asm__("a7") = n;
    __asm__ volatile("ecall" : "+r"(a0) : "r"(a1), "r"(a2), "r"(a3), "r"(a7) : "memory");
    return a0;
}

int rv32_open_read(const char *path)
{
    return (int)syscall4(SYS_openat, AT_FDCWD, (long)path, O_RDONLY, 0);
}

int rv32_open_write(const char *path)
{
    return (int)syscall4(SYS_openat, AT_FDCWD, (long)path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
}

long rv32_read(int fd, void *buf, size_t len)
{
    return syscall3(SYS_read, fd, (long)buf, (long)len);
}

long rv32_write(int fd, const void *buf, size_t len)
{
    return syscall3(SYS_write, fd, (long)buf, (long)len);
}

int rv32_close(int fd)
{
    return (int)syscall3(SYS_close, fd, 0, 0);
}

void rv32_exit(int code)
{
    syscall3(SYS_exit_group, code, 0, 0);
    for (;;) {
    }
}

static size_t str_len(const char *s)
{
    size_t n = 0;
    while (s[n] != '\0') {
        n++;
    }
    return n;
}

void rv32_puts(const char *s)
{
    (void)rv32_write(2, s, str_len(s));
}

void rv32_put_u32(uint32_t v)
{
    char buf[11];
    int i = 10;
    buf[i] = '\0';
    do {
        buf[--i] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0u && i > 0);
    rv32_puts(&buf[i]);
}

static void complain(const char *path, const char *what)
{
    rv32_puts(path);
    rv32_puts(": ");
    rv32_puts(what);
    rv32_puts("\n");
}

int rv32_read_file(const char *path, void *buf, size_t len)
{
    unsigned char *p = (unsigned char *)buf;
    size_t done = 0;
    unsigned char extra;
    int fd = rv32_open_read(path);
    if (fd < 0) {
        complain(path, "cannot open");
        return -1;
    }
    while (done < len) {
        long n = rv32_read(fd, p + done, len - done);
        if (n <= 0) {
            (void)rv32_close(fd);
            complain(path, n < 0 ? "read error" : "file is shorter than the tensor");
            return -1;
        }
        done += (size_t)n;
    }
    if (rv32_read(fd, &extra, 1) != 0) {
        (void)rv32_close(fd);
        complain(path, "file is longer than the tensor");
        return -1;
    }
    (void)rv32_close(fd);
    return 0;
}

int rv32_write_file(const char *path, const void *buf, size_t len)
{
    const unsigned char *p = (const unsigned char *)buf;
    size_t done = 0;
    int fd = rv32_open_write(path);
    if (fd < 0) {
        complain(path, "cannot create");
        return -1;
    }
    while (done < len) {
        long n = rv32_write(fd, p + done, len - done);
        if (n <= 0) {
            (void)rv32_close(fd);
            complain(path, "write error");
            return -1;
        }
        done += (size_t)n;
    }
    if (rv32_close(fd) != 0) {
        complain(path, "close failed");
        return -1;
    }
    return 0;
}

extern uint32_t rv32_stack_bottom[];
extern uint32_t rv32_stack_top[];

uint32_t rv32_stack_size(void)
{
    return (uint32_t)((uintptr_t)rv32_stack_top - (uintptr_t)rv32_stack_bottom);
}

uint32_t rv32_stack_high_water(void)
{
    const volatile uint32_t *p = rv32_stack_bottom;
    while (p < rv32_stack_top && *p == 0x5A5A5A5Au) {
        p++;
    }
    return (uint32_t)((uintptr_t)rv32_stack_top - (uintptr_t)p);
}

/* ---- string functions the compiler may call ---- */

typedef uint32_t __attribute__((may_alias)) rv32_word;

void *memcpy(void *restrict dst, const void *restrict src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);

void *memcpy(void *restrict dst, const void *restrict src, size_t n)
{
    unsigned char *d = (unsigned char *)dst;
    const unsigned char *s = (const unsigned char *)src;
    if ((((uintptr_t)d | (uintptr_t)s) & 3u) == 0u) {
        while (n >= 4u) {
            *(rv32_word *)(void *)d = *(const rv32_word *)(const void *)s;
            d += 4;
            s += 4;
            n -= 4u;
        }
    }
    while (n-- != 0u) {
        *d++ = *s++;
    }
    return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
    unsigned char *d = (unsigned char *)dst;
    const unsigned char *s = (const unsigned char *)src;
    if (d == s || n == 0u) {
        return dst;
    }
    if ((uintptr_t)d < (uintptr_t)s) {
        while (n-- != 0u) {
            *d++ = *s++;
        }
    } else {
        d += n;
        s += n;
        while (n-- != 0u) {
            *--d = *--s;
        }
    }
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    unsigned char *d = (unsigned char *)dst;
    unsigned char b = (unsigned char)c;
    if (((uintptr_t)d & 3u) == 0u) {
        uint32_t w = (uint32_t)b * 0x01010101u;
        while (n >= 4u) {
            *(rv32_word *)(void *)d = w;
            d += 4;
            n -= 4u;
        }
    }
    while (n-- != 0u) {
        *d++ = b;
    }
    return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *p = (const unsigned char *)a;
    const unsigned char *q = (const unsigned char *)b;
    for (; n != 0u; n--, p++, q++) {
        if (*p != *q) {
            return (int)*p - (int)*q;
        }
    }
    return 0;
}
