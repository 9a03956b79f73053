/* Probes of the process, descriptor and ABI boundary, for test_process_escape.py.
 *
 *   abi pids KPID OTHER...   every call that names a process, aimed at host pids
 *                            (the kernel's, the test's, a host sleeper): each prints
 *                            "<call> <pid-index> -> OK | ERRNO"
 *   abi sweep                every syscall number 0..470 the kernel serves (the list
 *                            on stdin, one number a line), once with zero arguments
 *                            and once with bad pointers: "<nr> <zero-res> <bad-res>",
 *                            or "<nr> SIG<n>" when the call killed the prober
 *   abi int80 PATH           i386 calls through int 0x80: getpid, open(PATH), kill
 *   abi x32 PATH             x32 numbers (0x40000000 | nr): getpid, open(PATH)
 *   abi fdscan               which descriptors 0..4095 are open
 *   abi killall              a child sends SIGKILL to -1 and to its process group
 *
 * Results are errno names, so that they compare with Linux's directly.
 */
#define _GNU_SOURCE
#include "rawsys.h"
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *res(long r)
{
    static char buf[64];
    if (r >= 0 || r < -4095) {
        snprintf(buf, sizeof buf, "OK");
        return buf;
    }
    const char *n = strerrorname_np((int)-r);
    return n ? n : "E?";
}


static long sc(long nr, long a, long b, long c, long d, long e)
{
    return raw_syscall(nr, a, b, c, d, e, 0);
}

#define PROBE(name, call) printf("%s %d -> %s\n", name, i, res(call))

static int pids_probes(int argc, char **argv)
{
    char buf[64] = "x";
    struct iovec local = {buf, sizeof buf}, remote = {buf, sizeof buf};
    siginfo_t info;
    memset(&info, 0, sizeof info);
    info.si_signo = SIGUSR1;
    info.si_code = SI_QUEUE;
    int fd = open("/dev/null", O_RDONLY);
    for (int i = 0; i < argc; i++) {
        long p = strtol(argv[i], NULL, 10);
        char path[128];
        PROBE("kill0", sc(SYS_kill, p, 0, 0, 0, 0));
        PROBE("kill9", sc(SYS_kill, p, SIGKILL, 0, 0, 0));
        PROBE("killpg9", sc(SYS_kill, -p, SIGKILL, 0, 0, 0));
        PROBE("tkill", sc(SYS_tkill, p, SIGKILL, 0, 0, 0));
        PROBE("tgkill", sc(SYS_tgkill, p, p, SIGKILL, 0, 0));
        PROBE("sigqueue", sc(SYS_rt_sigqueueinfo, p, SIGUSR1, (long)&info, 0, 0));
        PROBE("tgsigqueue", sc(SYS_rt_tgsigqueueinfo, p, p, SIGUSR1, (long)&info, 0));
        PROBE("ptrace-attach", sc(SYS_ptrace, PTRACE_ATTACH, p, 0, 0, 0));
        PROBE("ptrace-seize", sc(SYS_ptrace, PTRACE_SEIZE, p, 0, 0, 0));
        PROBE("vm-read", sc(SYS_process_vm_readv, p, (long)&local, 1, (long)&remote, 1));
        PROBE("vm-write", sc(SYS_process_vm_writev, p, (long)&local, 1, (long)&remote, 1));
        PROBE("pidfd-open", sc(SYS_pidfd_open, p, 0, 0, 0, 0));
        PROBE("kcmp", sc(SYS_kcmp, p, getpid(), 0 /* KCMP_FILE */, 0, 0));
        PROBE("kcmp-vm", sc(SYS_kcmp, getpid(), p, 1 /* KCMP_VM */, 0, 0));
        PROBE("setpgid", sc(SYS_setpgid, p, p, 0, 0, 0));
        PROBE("setpgid-join", sc(SYS_setpgid, 0, p, 0, 0, 0));
        PROBE("getpgid", sc(SYS_getpgid, p, 0, 0, 0, 0));
        PROBE("getsid", sc(SYS_getsid, p, 0, 0, 0, 0));
        PROBE("prlimit", sc(SYS_prlimit64, p, RLIMIT_NOFILE, 0, (long)buf, 0));
        PROBE("setaffinity", sc(SYS_sched_setaffinity, p, 8, (long)buf, 0, 0));
        PROBE("getparam", sc(SYS_sched_getparam, p, (long)buf, 0, 0, 0));
        PROBE("setpriority", sc(SYS_setpriority, PRIO_PROCESS, p, 19, 0, 0));
        PROBE("getpriority", sc(SYS_getpriority, PRIO_PROCESS, p, 0, 0, 0));
        PROBE("setpriority-pgrp", sc(SYS_setpriority, PRIO_PGRP, p, 19, 0, 0));
        PROBE("wait4", sc(SYS_wait4, p, 0, WNOHANG, 0, 0));
        PROBE("waitid", sc(SYS_waitid, P_PID, p, (long)&info, WEXITED | WNOHANG, 0));
        PROBE("f-setown", sc(SYS_fcntl, fd, F_SETOWN, p, 0, 0));
        PROBE("f-setown-pg", sc(SYS_fcntl, fd, F_SETOWN, -p, 0, 0));
        PROBE("migrate", sc(SYS_migrate_pages, p, 8, (long)buf, (long)buf, 0));
        snprintf(path, sizeof path, "/proc/%ld", p);
        PROBE("proc-dir", sc(SYS_openat, AT_FDCWD, (long)path, O_RDONLY, 0, 0));
        snprintf(path, sizeof path, "/proc/%ld/fd/0", p);
        PROBE("proc-fd", sc(SYS_openat, AT_FDCWD, (long)path, O_RDONLY, 0, 0));
        snprintf(path, sizeof path, "/proc/%ld/root/etc/hostname", p);
        PROBE("proc-root", sc(SYS_openat, AT_FDCWD, (long)path, O_RDONLY, 0, 0));
        snprintf(path, sizeof path, "/proc/%ld/mem", p);
        PROBE("proc-mem", sc(SYS_openat, AT_FDCWD, (long)path, O_RDWR, 0, 0));
        snprintf(path, sizeof path, "/proc/%ld/exe", p);
        PROBE("proc-exe", sc(SYS_readlinkat, AT_FDCWD, (long)path, (long)buf, sizeof buf, 0));
    }
    /* PRIO_USER names every process of a user: the guest's own only */
    int i = argc;
    PROBE("setpriority-user", sc(SYS_setpriority, PRIO_USER, 0, 7, 0, 0));
    PROBE("getpriority-user", sc(SYS_getpriority, PRIO_USER, 0, 0, 0, 0));
    PROBE("ptrace-traceme", sc(SYS_ptrace, PTRACE_TRACEME, 0, 0, 0, 0));
    return 0;
}

/* Each number in a child of its own, so that one the host answers with a signal
 * (some host kernels reserve numbers of their own) is reported as "SIG<n>". */
static int sweep(void)
{
    char line[32];
    while (fgets(line, sizeof line, stdin)) {
        long nr = strtol(line, NULL, 10);
        fflush(stdout);
        pid_t c = fork();
        if (c == 0) {
            int fork_like = nr == SYS_clone || nr == SYS_fork || nr == SYS_vfork;
            long (*call)(long, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t) =
                fork_like ? raw_forking : raw_syscall;
            long z = call(nr, 0, 0, 0, 0, 0, 0);
            char zr[64];
            snprintf(zr, sizeof zr, "%s", res(z));
            long bad = (long)0xffff800000001000UL;
            long b = call(nr, bad, bad, bad, bad, bad, bad);
            printf("%ld %s %s\n", nr, zr, res(b));
            fflush(stdout);
            _exit(0);
        }
        int status = 0;
        while (waitpid(c, &status, 0) < 0 && errno == EINTR)
            ;
        if (WIFSIGNALED(status))
            printf("%ld SIG%d\n", nr, WTERMSIG(status));
        while (waitpid(-1, NULL, WNOHANG | __WALL) > 0)
            ;
    }
    return 0;
}

/* i386 calls through int 0x80 (32-bit registers, numbers of the i386 table). */
static long int80(long nr, long a, long b, long c)
{
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
    return (int)ret;
}

static int i386_calls(const char *path)
{
    /* a path below 4 GiB, as a 32-bit caller would pass it */
    char *low = (char *)(uintptr_t)0x10000000;
    low = (char *)syscall(SYS_mmap, low, 4096, 3, 0x22 | 0x100000 /* MAP_FIXED_NOREPLACE */, -1, 0);
    if ((long)low < 0 || (uintptr_t)low > 0xffffffffUL)
        return printf("int80-setup -> failed\n"), 1;
    snprintf(low, 4096, "%s", path);
    int i = 0;
    PROBE("int80-getpid", int80(20, 0, 0, 0));
    PROBE("int80-open", int80(5, (long)(uintptr_t)low, O_RDWR | O_APPEND, 0));
    PROBE("int80-kill", int80(37, 1, 0, 0));
    PROBE("int80-execve", int80(11, (long)(uintptr_t)low, 0, 0));
    PROBE("int80-mkdir", int80(39, (long)(uintptr_t)low, 0777, 0));
    return 0;
}

static int x32_calls(const char *path)
{
    const long X32 = 0x40000000;
    int i = 0;
    PROBE("x32-getpid", sc(X32 | SYS_getpid, 0, 0, 0, 0, 0));
    PROBE("x32-open", sc(X32 | SYS_open, (long)path, O_RDWR | O_APPEND, 0, 0, 0));
    PROBE("x32-openat", sc(X32 | SYS_openat, AT_FDCWD, (long)path, O_RDWR, 0, 0));
    PROBE("x32-execve", sc(X32 | 520 /* x32 execve */, (long)path, 0, 0, 0, 0));
    PROBE("x32-kill", sc(X32 | SYS_kill, 1, 0, 0, 0, 0));
    PROBE("nr-512", sc(512, 0, 0, 0, 0, 0));
    PROBE("nr-minus1", sc(-1, 0, 0, 0, 0, 0));
    PROBE("nr-huge", sc(0x7fffffff, 0, 0, 0, 0, 0));
    return 0;
}

static int fdscan(void)
{
    printf("open-fds:");
    for (int fd = 0; fd < 4096; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            printf(" %d", fd);
    printf("\n");
    return 0;
}

static int killall(void)
{
    pid_t victim = fork();
    if (victim == 0) {
        pause();
        _exit(1);
    }
    pid_t c = fork();
    if (c == 0) {
        setpgid(0, 0);
        int i = 0;
        PROBE("kill-1", kill(-1, SIGKILL) == 0 ? 0 : -errno);
        fflush(stdout);
        kill(0, SIGKILL);
        _exit(1);
    }
    int status;
    waitpid(c, &status, 0);
    printf("killer %s %d\n", WIFSIGNALED(status) ? "signal" : "exit",
           WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    waitpid(victim, &status, 0);
    printf("victim %s %d\n", WIFSIGNALED(status) ? "signal" : "exit",
           WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    printf("parent alive\n");
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 2 && !strcmp(argv[1], "pids"))
        return pids_probes(argc - 2, argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "sweep"))
        return sweep();
    if (argc >= 3 && !strcmp(argv[1], "int80"))
        return i386_calls(argv[2]);
    if (argc >= 3 && !strcmp(argv[1], "x32"))
        return x32_calls(argv[2]);
    if (argc >= 2 && !strcmp(argv[1], "fdscan"))
        return fdscan();
    if (argc >= 2 && !strcmp(argv[1], "killall"))
        return killall();
    fprintf(stderr, "usage: abi pids|sweep|int80|x32|fdscan|killall\n");
    return 2;
}
