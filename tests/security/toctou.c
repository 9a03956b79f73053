/* TOCTOU probe for test_toctou.py: a second thread rewrites the path buffer
 * while the first one passes it to the kernel, thousands of times.
 *
 *   toctou race PREFIX CANARY N   open, stat, rename (source and target) and
 *                                 mkdir on a buffer flipping between a path
 *                                 inside PREFIX, a `..` climb to CANARY and a
 *                                 symlink (made here) to CANARY; one line per
 *                                 call: "<call> n=.. inside=.. hit=.. enoent=.. other=..(ERR)"
 *   toctou exec PREFIX HOSTBIN N [scribble]
 *                                 N children each execve a buffer flipping
 *                                 between PREFIX/bin/toctou and HOSTBIN (and a
 *                                 `..` climb to it), retrying on failure; with
 *                                 "scribble" their second thread also writes
 *                                 HOSTBIN over the stack below the caller's sp,
 *                                 where a ptrace sandbox writes its rewritten
 *                                 path; prints
 *                                 "exec n=.. inside=.. hit=.. killed=.. failed=.."
 *                                 (a child that failed 100 times says why on stderr)
 *   toctou exec-child             what the inside target does: exit 42
 *
 * A "hit" is a call that reached CANARY (or ran HOSTBIN): natively, where the
 * host resolves the paths, they happen; in the guest there must be none.
 * Built with -DPWN it is the host-only program instead: it prints PWNED and
 * exits 99.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rawsys.h"

#define INSIDE "INSIDE"
#define DEEP "../../../../../../../../../../../../../../../../../../../../../../../.."
#define EXIT_INSIDE 42
#define EXIT_PWN 99

#ifdef PWN
int main(void)
{
    puts("PWNED-HOST-EXEC");
    return EXIT_PWN;
}
#else

static char buf[1024];              /* the path the calls pass, rewritten by the flipper */
static char variants[3][512];
static volatile int flipping;
static volatile uintptr_t scribble_sp;
static volatile unsigned flips;  /* exec: the caller's sp, 0 = do not scribble */

static void *flipper(void *arg)
{
    (void)arg;
    for (unsigned i = 0; flipping; i++) {
        const char *v = variants[i % 3];
        memcpy(buf, v, strlen(v) + 1);
        flips = i;
        uintptr_t sp = scribble_sp;
        if (sp) {
            /* where a tracer would put the path: just below sp minus a gap */
            char *at = (char *)((sp - 1024 - 16 * (i % 24)) & ~(uintptr_t)15);
            memcpy(at, variants[1], strlen(variants[1]) + 1);
        }
    }
    return NULL;
}

static void set_variants(const char *a, const char *b, const char *c)
{
    snprintf(variants[0], sizeof variants[0], "%s", a);
    snprintf(variants[1], sizeof variants[1], "%s", b);
    snprintf(variants[2], sizeof variants[2], "%s", c);
}

static void flip(pthread_t *t)
{
    strcpy(buf, variants[0]);
    flipping = 1;
    if (pthread_create(t, NULL, flipper, NULL) != 0)
        exit(3);
}

static void start(pthread_t *t, const char *a, const char *b, const char *c)
{
    set_variants(a, b, c);
    flip(t);
}

static void stop(pthread_t t)
{
    flipping = 0;
    pthread_join(t, NULL);
}

struct tally {
    long n, inside, hit, enoent, other;
    int err;
};

static void failed(struct tally *t)
{
    if (errno == ENOENT)
        t->enoent++;
    else {
        t->other++;
        t->err = errno;
    }
}

static void report(const char *call, const struct tally *t)
{
    printf("%s n=%ld inside=%ld hit=%ld enoent=%ld other=%ld(%s)\n", call, t->n, t->inside,
           t->hit, t->enoent, t->other, t->err ? strerrorname_np(t->err) : "-");
    fflush(stdout);
}

/* Is the file at p the inside one (its content is INSIDE)? */
static int is_inside(const char *p)
{
    char got[64] = {0};
    int fd = open(p, O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, got, sizeof got - 1);
    close(fd);
    return n == 6 && !memcmp(got, INSIDE, 6);
}

static int race(const char *prefix, const char *canary, int n)
{
    char ok[256], file[512], moved[512], link[512], dlink[512], newdir[512], esc[512];
    char escdir[512], viadir[512], escnew[512], vianew[512];
    snprintf(ok, sizeof ok, "%s/ok", prefix);
    snprintf(file, sizeof file, "%s/file", ok);
    snprintf(moved, sizeof moved, "%s/moved", ok);
    snprintf(link, sizeof link, "%s/hostlink", ok);
    snprintf(dlink, sizeof dlink, "%s/hostdir", ok);
    snprintf(newdir, sizeof newdir, "%s/newdir", ok);
    snprintf(esc, sizeof esc, "%s/" DEEP "%s/secret", prefix, canary);
    snprintf(escdir, sizeof escdir, "%s/" DEEP "%s/newdir", prefix, canary);
    snprintf(viadir, sizeof viadir, "%s/newdir", dlink);
    snprintf(escnew, sizeof escnew, "%s/" DEEP "%s/planted", prefix, canary);
    snprintf(vianew, sizeof vianew, "%s/planted", dlink);
    char target[512];
    snprintf(target, sizeof target, "%s/secret", canary);
    mkdir(ok, 0755);
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, INSIDE, 6) != 6)
        return printf("setup %s\n", strerrorname_np(errno)), 1;
    close(fd);
    if (symlink(target, link) < 0 || symlink(canary, dlink) < 0)
        return printf("setup %s\n", strerrorname_np(errno)), 1;

    pthread_t t;
    struct tally o = {0}, s = {0}, r = {0}, rt = {0}, m = {0};
    start(&t, file, esc, link);
    for (int i = 0; i < n; i++) {
        o.n++;
        fd = open(buf, O_RDONLY);
        if (fd >= 0) {
            char got[64] = {0};
            ssize_t k = read(fd, got, sizeof got - 1);
            close(fd);
            if (k == 6 && !memcmp(got, INSIDE, 6))
                o.inside++;
            else if (o.hit++ == 0)
                printf("leaked by open: %s\n", got);   /* once: the test looks for it */
        } else
            failed(&o);
        struct stat sb;
        s.n++;
        if (stat(buf, &sb) == 0) {
            if (S_ISREG(sb.st_mode) && sb.st_size == 6)
                s.inside++;
            else
                s.hit++;
        } else
            failed(&s);
        /* rename's source flips: moving the host secret into the guest */
        r.n++;
        if (rename(buf, moved) == 0) {
            struct stat lb;
            if (lstat(moved, &lb) == 0 && S_ISLNK(lb.st_mode)) {
                r.inside++;             /* our own symlink moved, as Linux does */
                rename(moved, link);
            } else if (is_inside(moved)) {
                r.inside++;
                rename(moved, file);
            } else {
                r.hit++;
                rename(moved, file);
            }
        } else
            failed(&r);
    }
    stop(t);
    /* rename's target flips: planting a guest file on the host */
    start(&t, moved, escnew, vianew);
    for (int i = 0; i < n; i++) {
        rt.n++;
        if (rename(file, buf) == 0) {
            if (rename(moved, file) == 0)
                rt.inside++;
            else {
                rt.hit++;
                fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
                write(fd, INSIDE, 6);
                close(fd);
            }
        } else
            failed(&rt);
    }
    stop(t);
    start(&t, newdir, escdir, viadir);
    for (int i = 0; i < n; i++) {
        m.n++;
        if (mkdir(buf, 0755) == 0) {
            if (rmdir(newdir) == 0)
                m.inside++;
            else
                m.hit++;
        } else
            failed(&m);
    }
    stop(t);
    report("open", &o);
    report("stat", &s);
    report("rename-from", &r);
    report("rename-to", &rt);
    report("mkdir", &m);
    return 0;
}

/* One child: a flipping thread, then execve of the buffer until one works. */
static void exec_child(int scribble)
{
    pthread_t t;
    char *argv[] = {"toctou", "exec-child", NULL};
    char *envp[] = {NULL};
    uintptr_t sp;
    __asm__ volatile("mov %%rsp, %0" : "=r"(sp));
    scribble_sp = scribble ? sp : 0;
    flip(&t);
    while (flips < 100 + (unsigned)getpid() % 1000)     /* start anywhere in the cycle */
        ;
    long errs[4096] = {0};
    for (int i = 0; i < 100; i++) {
        long r = raw_syscall(SYS_execve, (uint64_t)buf, (uint64_t)argv, (uint64_t)envp, 0, 0, 0);
        if (r < 0 && -r < 4096)
            errs[-r]++;
        usleep(100);        /* let the flipper run: on one CPU it may be starved */
    }
    for (int e = 1; e < 4096; e++)
        if (errs[e])
            fprintf(stderr, "exec: %s x%ld\n", strerrorname_np(e), errs[e]);
    _exit(3);
}

static int exec_race(const char *prefix, const char *hostbin, int n, int scribble)
{
    char inside[512], climb[512];
    snprintf(inside, sizeof inside, "%s/bin/toctou", prefix);
    snprintf(climb, sizeof climb, "%s/" DEEP "%s", prefix, hostbin);
    set_variants(inside, hostbin, climb);
    long ok = 0, hit = 0, killed = 0, bad = 0;
    for (int i = 0; i < n; i++) {
        fflush(stdout);
        pid_t p = fork();
        if (p == 0)
            exec_child(scribble);
        int status;
        if (p < 0 || waitpid(p, &status, 0) != p) {
            bad++;
            continue;
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_INSIDE)
            ok++;
        else if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_PWN)
            hit++;
        else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
            killed++;
        else {
            bad++;
            fprintf(stderr, "exec child: %s %d\n", WIFEXITED(status) ? "exit" : "signal",
                    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        }
    }
    printf("exec n=%d inside=%ld hit=%ld killed=%ld failed=%ld\n", n, ok, hit, killed, bad);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 2 && !strcmp(argv[1], "exec-child"))
        return EXIT_INSIDE;
    if (argc == 5 && !strcmp(argv[1], "race"))
        return race(argv[2], argv[3], atoi(argv[4]));
    if ((argc == 5 || argc == 6) && !strcmp(argv[1], "exec"))
        return exec_race(argv[2], argv[3], atoi(argv[4]), argc == 6);
    fprintf(stderr, "usage: toctou race PREFIX CANARY N | exec PREFIX HOSTBIN N [scribble]\n");
    return 2;
}
#endif
