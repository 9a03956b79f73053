/* A trinity-style syscall fuzzer to run as a guest under umlpy.
 *
 *   fuzz umlpy-fuzz[-RUNID] SEED SECONDS NRS [HOSTPATH...]
 *
 * NRS is a comma list of syscall numbers to issue (the driver, tools/umlpy-fuzz,
 * passes the ones the kernel serves in Python).  HOSTPATH arguments are extra
 * path strings for the pool (host canaries, /proc/<umlpy's pid>/fd...).
 *
 * The first process prepares /tmp/fuzz, then forks one worker after another
 * until SECONDS have passed.  Worker i draws its calls from a generator seeded
 * with mix(SEED, i), so a seed replays the same call sequences.  A worker runs
 * up to CALLS_PER_WORKER calls with random and boundary arguments (bad
 * pointers, strings running into unmapped memory, huge lengths, odd flags,
 * closed fds, host pids) and exits; one that dies of a signal or hangs (it is
 * killed after WORKER_SECONDS) is counted and replaced.  The totals are printed
 * as one "fuzz: ..." line for the driver.  FUZZ_VERBOSE=1 in the environment
 * prints every call before it is issued (for minimising a finding).
 *
 * Calls that fork are issued through a stub whose child exits at once without
 * touching memory, so clone() with any flags or stack is safe to fuzz.
 */
#define _GNU_SOURCE
#include "rawsys.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TOKEN "umlpy-fuzz"
#define CALLS_PER_WORKER 150
#define WORKER_SECONDS 4
#define MAX_NRS 8192
#define MAX_PATHS 64
#define PAGE 4096UL

/* ---- the generator: splitmix64, one state per worker ---- */
static uint64_t rng;

static uint64_t next(void)
{
    uint64_t z = (rng += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static unsigned pick(unsigned n) { return (unsigned)(next() % n); }

/* ---- state shared between the first process and its workers ---- */
struct totals {
    volatile unsigned long calls;
    volatile unsigned long enosys;
    volatile unsigned long ok;
};
static struct totals *totals;

static long nrs[MAX_NRS];
static int n_nrs;
static const char *paths[MAX_PATHS];
static int n_paths;
static int verbose;

/* ---- argument pools (rebuilt in every worker) ---- */
static int fds[32];
static int n_fds;
static char *scratch;           /* SCRATCH_PAGES pages, rewritten before each call */
#define SCRATCH_PAGES 8
static char *ro_page;           /* read-only, holds a valid path */
static char *none_page;         /* PROT_NONE */
static char *hole;              /* a page that was unmapped */
static char *edge;              /* the last bytes of a page before an unmapped one */
static char *longpath;          /* beyond PATH_MAX */
static pid_t self_pid, child_pid;

static const uint64_t boundary[] = {
    0, 1, 2, 3, 7, 8, 16, 64, 255, 256, 4095, 4096, 4097, 65535, 65536,
    0x7fffffff, 0x80000000, 0xffffffff, 0x100000000ULL, 0x7fffffffffffffffULL,
    0x8000000000000000ULL, 0xffffffffffffffffULL, 0xfffffffffffff000ULL,
    (uint64_t)-2, (uint64_t)-100, (uint64_t)-4095, (uint64_t)-4096, 1 << 20, 1 << 30,
};

static const uint64_t bad_ptrs[] = {
    0, 1, 0xfff, 0x10000, 0xffffffffffffffffULL, 0xffff800000000000ULL,
    0x7ffffffff000ULL, 0x0000800000000000ULL, 0xdeadbeefULL,
};

static void add_fd(int fd)
{
    if (fd >= 0 && n_fds < (int)(sizeof fds / sizeof fds[0]))
        fds[n_fds++] = fd;
}

static void setup_fds(void)
{
    int p[2];
    n_fds = 0;
    add_fd(open("/tmp/fuzz/f", O_RDWR | O_CREAT, 0644));
    add_fd(open("/tmp/fuzz/d", O_RDONLY | O_DIRECTORY));
    add_fd(open("/", O_PATH));
    add_fd(open("/dev/null", O_RDWR));
    add_fd(open("/proc/self/status", O_RDONLY));
    add_fd(open("/proc", O_RDONLY | O_DIRECTORY));
    if (pipe2(p, O_NONBLOCK) == 0) {
        add_fd(p[0]);
        add_fd(p[1]);
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p) == 0) {
        add_fd(p[0]);
        add_fd(p[1]);
    }
    add_fd(socket(AF_INET, SOCK_DGRAM, 0));
    add_fd(eventfd(0, EFD_NONBLOCK));
    add_fd(epoll_create1(0));
    add_fd(memfd_create("fuzz", 0));
    int closed = open("/dev/null", O_RDONLY);
    close(closed);
    add_fd(closed);             /* a closed descriptor */
}

static void *map(size_t len, int prot)
{
    void *p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("fuzz: mmap");
        _exit(2);
    }
    return p;
}

static void setup_memory(void)
{
    scratch = map(SCRATCH_PAGES * PAGE, PROT_READ | PROT_WRITE);
    ro_page = map(PAGE, PROT_READ | PROT_WRITE);
    strcpy(ro_page, "/tmp/fuzz/f");
    mprotect(ro_page, PAGE, PROT_READ);
    none_page = map(PAGE, PROT_NONE);
    char *two = map(2 * PAGE, PROT_READ | PROT_WRITE);
    munmap(two + PAGE, PAGE);
    hole = two + PAGE;
    /* "/tmp/fu" with no terminator before the hole */
    edge = two + PAGE - 7;
    memcpy(edge, "/tmp/fu", 7);
    longpath = map(3 * PAGE, PROT_READ | PROT_WRITE);
    for (size_t i = 0; i < 3 * PAGE - 1; i++)
        longpath[i] = (i % 2) ? '/' : 'a';
    longpath[3 * PAGE - 1] = 0;
}

/* Fill a scratch slot with something a syscall might want to read. */
static char *fill_scratch(int slot)
{
    char *s = scratch + (size_t)slot * PAGE;
    switch (pick(6)) {
    case 0: /* random bytes */
        for (size_t i = 0; i < PAGE; i += 8) {
            uint64_t v = next();
            memcpy(s + i, &v, 8);
        }
        break;
    case 1: /* a path from the pool */
        snprintf(s, PAGE, "%s", paths[pick(n_paths)]);
        break;
    case 2: /* boundary words (struct fields, lengths, counts) */
        for (size_t i = 0; i < PAGE; i += 8)
            memcpy(s + i, &boundary[pick(sizeof boundary / sizeof boundary[0])], 8);
        break;
    case 3: /* an argv-like vector of pointers, NULL-terminated or not */
        for (size_t i = 0; i < PAGE; i += 8) {
            uint64_t v = pick(3) ? (uint64_t)(uintptr_t)ro_page
                       : bad_ptrs[pick(sizeof bad_ptrs / sizeof bad_ptrs[0])];
            memcpy(s + i, &v, 8);
        }
        if (pick(2))
            memset(s + 8 * (1 + pick(8)), 0, 8);
        break;
    case 4: /* small numbers: sockaddr families, iovec lengths, sigsets */
        for (size_t i = 0; i < PAGE; i += 4) {
            uint32_t v = pick(40);
            memcpy(s + i, &v, 4);
        }
        break;
    default: /* zeros */
        memset(s, 0, PAGE);
    }
    return s;
}

static uint64_t gen_ptr(int slot)
{
    switch (pick(10)) {
    case 0: case 1: case 2: case 3:
        return (uintptr_t)fill_scratch(slot);
    case 4:
        return (uintptr_t)ro_page;
    case 5:
        return (uintptr_t)none_page;
    case 6:
        return (uintptr_t)hole;
    case 7:
        return (uintptr_t)edge;
    case 8:
        return (uintptr_t)(pick(2) ? longpath : longpath + 3 * PAGE - 300);
    default:
        return bad_ptrs[pick(sizeof bad_ptrs / sizeof bad_ptrs[0])];
    }
}

static uint64_t gen_fd(void)
{
    switch (pick(8)) {
    case 0:
        return (uint64_t)(int64_t)AT_FDCWD;
    case 1: {
        static const int odd[] = {-1, 0, 1, 2, 3, 255, 1023, 1024, 65535, 0x7fffffff, -2};
        return (uint64_t)(int64_t)odd[pick(sizeof odd / sizeof odd[0])];
    }
    default:
        return n_fds ? (uint64_t)fds[pick(n_fds)] : 0;
    }
}

static uint64_t gen_pid(void)
{
    static const int odd[] = {0, -1, 2, 3, 999999, 0x7fffffff, -0x7fffffff - 1};
    switch (pick(4)) {
    case 0:
        return (uint64_t)(int64_t)self_pid;
    case 1:
        return (uint64_t)(int64_t)child_pid;
    default:
        return (uint64_t)(int64_t)odd[pick(sizeof odd / sizeof odd[0])];
    }
}

static uint64_t gen_arg(int slot)
{
    switch (pick(12)) {
    case 0: case 1: case 2:
        return boundary[pick(sizeof boundary / sizeof boundary[0])];
    case 3: case 4: case 5:
        return gen_ptr(slot);
    case 6: case 7:
        return gen_fd();
    case 8:
        return gen_pid();
    case 9: /* flag words: a few random bits */
        return (1ULL << pick(32)) | (pick(2) ? (1ULL << pick(32)) : 0) | (pick(2) ? pick(8) : 0);
    case 10:
        return pick(64);
    default:
        return next();
    }
}

/* Where common calls take a path (P) or a descriptor (F): those slots get one
 * from the pools most of the time, so that calls get past their first check. */
struct hint { short nr; const char *slots; };
static const struct hint hints[] = {
    {SYS_open, "P"}, {SYS_stat, "P"}, {SYS_lstat, "P"}, {SYS_access, "P"},
    {SYS_execve, "P"}, {SYS_truncate, "P"}, {SYS_chdir, "P"}, {SYS_rename, "PP"},
    {SYS_mkdir, "P"}, {SYS_rmdir, "P"}, {SYS_creat, "P"}, {SYS_link, "PP"},
    {SYS_unlink, "P"}, {SYS_symlink, "PP"}, {SYS_readlink, "P"}, {SYS_chmod, "P"},
    {SYS_chown, "P"}, {SYS_lchown, "P"}, {SYS_utime, "P"}, {SYS_mknod, "P"},
    {SYS_statfs, "P"}, {SYS_chroot, "P"}, {SYS_mount, "PPP"}, {SYS_umount2, "P"},
    {SYS_setxattr, "P"}, {SYS_lsetxattr, "P"}, {SYS_getxattr, "P"}, {SYS_lgetxattr, "P"},
    {SYS_listxattr, "P"}, {SYS_llistxattr, "P"}, {SYS_removexattr, "P"},
    {SYS_lremovexattr, "P"}, {SYS_utimes, "P"}, {SYS_openat, "FP"}, {SYS_mkdirat, "FP"},
    {SYS_mknodat, "FP"}, {SYS_fchownat, "FP"}, {SYS_futimesat, "FP"},
    {SYS_newfstatat, "FP"}, {SYS_unlinkat, "FP"}, {SYS_renameat, "FPFP"},
    {SYS_linkat, "FPFP"}, {SYS_symlinkat, "PFP"}, {SYS_readlinkat, "FP"},
    {SYS_fchmodat, "FP"}, {SYS_faccessat, "FP"}, {SYS_utimensat, "FP"},
    {SYS_execveat, "FP"}, {SYS_statx, "FP"}, {SYS_openat2, "FP"}, {SYS_faccessat2, "FP"},
    {SYS_renameat2, "FPFP"}, {452 /* fchmodat2 */, "FP"}, {SYS_fstat, "F"}, {SYS_fchdir, "F"},
    {SYS_fchmod, "F"}, {SYS_fchown, "F"}, {SYS_fstatfs, "F"}, {SYS_getdents64, "F"},
    {SYS_getdents, "F"}, {SYS_fsync, "F"}, {SYS_fdatasync, "F"}, {SYS_syncfs, "F"},
    {SYS_fsetxattr, "F"}, {SYS_fgetxattr, "F"}, {SYS_flistxattr, "F"},
    {SYS_fremovexattr, "F"}, {SYS_ioctl, "F"}, {SYS_fcntl, "F"}, {SYS_connect, "F"},
    {SYS_bind, "F"},
};

static const char *slots_of(long nr)
{
    for (size_t i = 0; i < sizeof hints / sizeof hints[0]; i++)
        if (hints[i].nr == nr)
            return hints[i].slots;
    return "";
}

static uint64_t path_arg(int slot)
{
    char *s = scratch + (size_t)slot * PAGE;
    snprintf(s, PAGE, "%s", paths[pick(n_paths)]);
    return (uintptr_t)s;
}

/* ---- issuing calls ---- */


/* Arguments that would let a worker harm the first process (it is guest pid 1
 * and the workers' parent): signals, memory writes and limits aimed at it. */
static void spare_parent(long nr, uint64_t *args)
{
    int pid_args = 0;
    switch (nr) {
    case SYS_kill: case SYS_tkill: case SYS_rt_sigqueueinfo: case SYS_process_vm_writev:
    case SYS_prlimit64: case SYS_pidfd_open: case SYS_setpgid:
        pid_args = 1;
        break;
    case SYS_tgkill: case SYS_rt_tgsigqueueinfo: case SYS_kcmp:
        pid_args = 2;
        break;
    }
    pid_t parent = getppid();
    for (int i = 0; i < pid_args; i++) {
        int v = (int)args[i];
        if (v == 1 || v == parent)
            args[i] = (uint64_t)self_pid;
    }
    if (nr == SYS_setpriority && ((int)args[1] == 1 || (int)args[1] == parent))
        args[1] = (uint64_t)self_pid;
}

static void worker(uint64_t seed, int index)
{
    rng = seed;
    setsid();                   /* kill(0) and killpg hit this worker only */
    (void)!chdir("/tmp/fuzz/d");  /* relative paths land in the scratch tree */
    alarm(WORKER_SECONDS);
    self_pid = getpid();
    child_pid = fork();
    if (child_pid == 0) {       /* a sleeping child to aim pid arguments at */
        pause();
        _exit(0);
    }
    setup_memory();
    setup_fds();
    for (int i = 0; i < CALLS_PER_WORKER; i++) {
        long nr = nrs[pick(n_nrs)];
        uint64_t a[6];
        const char *slots = slots_of(nr);
        for (int j = 0; j < 6; j++) {
            char kind = j < (int)strlen(slots) ? slots[j] : 0;
            if (kind == 'P' && pick(10) < 7)
                a[j] = path_arg(j);
            else if (kind == 'F' && pick(10) < 7)
                a[j] = gen_fd();
            else
                a[j] = gen_arg(j);
        }
        spare_parent(nr, a);
        if (verbose) {
            char line[256];
            int n = snprintf(line, sizeof line, "w%d #%d %ld(%#lx, %#lx, %#lx, %#lx, %#lx, %#lx)\n",
                             index, i, nr, a[0], a[1], a[2], a[3], a[4], a[5]);
            (void)!write(2, line, n);
        }
        __sync_fetch_and_add(&totals->calls, 1);
        long r = (nr == SYS_clone || nr == SYS_fork || nr == SYS_vfork)
                 ? raw_forking(nr, a[0], a[1], a[2], a[3], a[4], a[5])
                 : raw_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
        if (r == -ENOSYS)
            __sync_fetch_and_add(&totals->enosys, 1);
        else if (r >= 0 || r < -4095)
            __sync_fetch_and_add(&totals->ok, 1);
        if (r >= 0 && r < 4096 && n_fds < 30 && pick(4) == 0)
            add_fd((int)r);     /* a new descriptor, maybe: aim later calls at it */
    }
    kill(child_pid, SIGKILL);
    _exit(0);
}

/* ---- the first process ---- */

static void put(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd >= 0) {
        (void)!write(fd, text, strlen(text));
        close(fd);
    }
}

static void prepare(void)
{
    mkdir("/tmp/fuzz", 0777);
    mkdir("/tmp/fuzz/d", 0755);
    put("/tmp/fuzz/f", "fuzz file\n", 0644);
    put("/tmp/fuzz/bad.elf", "\177ELF\2\1\1\0\0\0\0\0\0\0\0\0\2\0\76\0", 0755);
    put("/tmp/fuzz/script", "#!/tmp/fuzz/script\n", 0755);
    put("/tmp/fuzz/interp", "#!/tmp/fuzz/bad.elf -x\n", 0755);
    symlink("f", "/tmp/fuzz/link");
    symlink("loop", "/tmp/fuzz/loop");
    symlink("/proc/self/root/tmp/fuzz", "/tmp/fuzz/d/up");
    mkfifo("/tmp/fuzz/fifo", 0666);
}

static void rm_tree(const char *path)
{
    /* enough for what workers leave: files, links and a few levels of directories */
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (fd < 0) {
        unlink(path);
        return;
    }
    char buf[8192];
    long n;
    while ((n = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
        for (long off = 0; off < n;) {
            unsigned short reclen = *(unsigned short *)(buf + off + 16);
            const char *name = buf + off + 19;
            off += reclen;
            if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
                continue;
            char sub[4096];
            snprintf(sub, sizeof sub, "%s/%s", path, name);
            if (unlink(sub) != 0)
                rm_tree(sub);
        }
    }
    close(fd);
    rmdir(path);
}

static void parse_nrs(const char *list)
{
    char *copy = strdup(list), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t && n_nrs < MAX_NRS; t = strtok_r(NULL, ",", &save))
        nrs[n_nrs++] = strtol(t, NULL, 10);
    free(copy);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    /* Also reached when a worker execs itself with random arguments: do nothing then. */
    if (argc < 5 || strncmp(argv[1], TOKEN, strlen(TOKEN)) != 0)
        return 0;
    uint64_t seed = strtoull(argv[2], NULL, 0);
    double seconds = strtod(argv[3], NULL);
    parse_nrs(argv[4]);
    static const char *const base[] = {
        "/tmp/fuzz/f", "/tmp/fuzz/d", "/tmp/fuzz/d/new", "/tmp/fuzz/link", "/tmp/fuzz/loop",
        "/tmp/fuzz/loop/x", "/tmp/fuzz/fifo", "/tmp/fuzz/bad.elf", "/tmp/fuzz/script",
        "/tmp/fuzz/interp", "/tmp/fuzz/d/up/d/up/f", "/tmp/fuzz/nonexistent/x", "/tmp/fuzz/new",
        "/", ".", "..", "", "/proc/self/fd/0", "/proc/self/fd/3", "/proc/self/root",
        "/proc/self/exe", "/proc/self/cwd/..", "/proc/1/fd", "/proc/self/mem", "/proc/self/maps",
        "/proc/self/task", "/dev/null", "/dev/zero", "/dev/full", "/dev/ptmx", "/dev/shm/x",
        "/sys", "/tmp/fuzz/../../../../tmp/fuzz/f", "/proc/sys/kernel/hostname",
    };
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
        paths[n_paths++] = base[i];
    for (int i = 5; i < argc && n_paths < MAX_PATHS; i++)
        paths[n_paths++] = argv[i];
    verbose = getenv("FUZZ_VERBOSE") != NULL;
    totals = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (totals == MAP_FAILED || n_nrs == 0) {
        fprintf(stderr, "fuzz: bad set-up\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    prepare();
    printf("fuzz: ready\n");
    fflush(stdout);
    unsigned workers = 0, died = 0, hung = 0;
    double end = now() + seconds;
    while (now() < end) {
        uint64_t wseed = seed * 0x100000001B3ULL + workers;
        pid_t w = fork();
        if (w == 0) {
            signal(SIGPIPE, SIG_DFL);
            worker(wseed, (int)workers);
        }
        if (w < 0) {
            perror("fuzz: fork");
            break;
        }
        workers++;
        double deadline = now() + WORKER_SECONDS + 2;
        int status = 0;
        for (;;) {
            pid_t r = waitpid(w, &status, WNOHANG);
            if (r == w)
                break;
            if (r < 0 && errno != EINTR) {
                status = 0;
                break;
            }
            if (now() > deadline) {
                kill(w, SIGKILL);
                hung++;
                if (verbose)
                    fprintf(stderr, "fuzz: worker %u hung\n", workers - 1);
            }
            usleep(5000);
        }
        if (WIFSIGNALED(status) && WTERMSIG(status) != SIGALRM) {
            died++;
            if (verbose)
                fprintf(stderr, "fuzz: worker %u died of signal %d\n", workers - 1, WTERMSIG(status));
        }
        while (waitpid(-1, NULL, WNOHANG) > 0)   /* orphans reparented to us */
            ;
    }
    /* the sleeping children of killed workers, and anything else left */
    kill(-1, SIGKILL);
    while (waitpid(-1, NULL, 0) > 0)
        ;
    rm_tree("/tmp/fuzz");
    rm_tree("/dev/shm/x");
    printf("fuzz: seed=%lu workers=%u calls=%lu ok=%lu enosys=%lu died=%u hung=%u\n",
           (unsigned long)seed, workers, totals->calls, totals->ok, totals->enosys, died, hung);
    printf("fuzz: done\n");
    fflush(stdout);
    /* the driver samples the kernel's descriptors and threads now */
    char go;
    (void)!read(0, &go, 1);
    return 0;
}
