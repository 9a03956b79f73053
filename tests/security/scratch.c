/* The kernel writes a few hundred bytes below a guest's stack pointer for
 * execve (the host path of the image) and for recvfrom with an address (the
 * peer's host name). A guest whose memory there is not writable must get an
 * errno and go on: never an oops, never a write anywhere else.
 *
 * A thread whose stack sits right above a PROT_NONE page moves its stack
 * pointer to ~300 bytes above that page and makes the two calls with no stack
 * of their own (raw syscalls), so the kernel's scratch falls in the guard.
 * Prints "execve -> OK|ERRNAME", "recvfrom -> OK|ERRNAME", then "alive". */
#define _GNU_SOURCE
#include <alloca.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "rawsys.h"

#define PAGE 4096
#define STACK (64 * PAGE)

static int sv[2];
static long results[2];
static char *const true_argv[] = {"/bin/true", NULL};
static char buf[8];
static struct sockaddr_un from;
static socklen_t fromlen = sizeof from;

static void __attribute__((noinline)) at_the_edge(char *guard_end)
{
    char here;
    volatile char *pad = alloca((size_t)(&here - guard_end) - 300);
    pad[0] = 0;
    results[0] = raw_syscall(SYS_execve, (uint64_t)"/bin/true", (uint64_t)true_argv, 0, 0, 0, 0);
    results[1] = raw_syscall(SYS_recvfrom, (uint64_t)sv[0], (uint64_t)buf, sizeof buf, 0,
                             (uint64_t)&from, (uint64_t)&fromlen);
}

static void *thread(void *guard_end)
{
    at_the_edge(guard_end);
    return NULL;
}

static void report(const char *name, long r)
{
    if (r >= 0)
        printf("%s -> OK\n", name);
    else
        printf("%s -> %s\n", name, strerrorname_np((int)-r));
}

int main(void)
{
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) != 0 || write(sv[1], "x", 1) != 1)
        return 2;
    char *mem = mmap(NULL, PAGE + STACK, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED || mprotect(mem, PAGE, PROT_NONE) != 0)
        return 2;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstack(&attr, mem + PAGE, STACK);
    pthread_t t;
    if (pthread_create(&t, &attr, thread, mem + PAGE) != 0)
        return 2;
    pthread_join(t, NULL);
    report("execve", results[0]);
    report("recvfrom", results[1]);
    printf("alive\n");
    return 0;
}
