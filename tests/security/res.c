/* Resource probes for test_resources.py; each prints one line to compare.
 *
 *   res forks              fork until it fails: "forks N ERRNO" (children wait);
 *                          then what a vfork, a raw fork and a non-blocking
 *                          wait give there (the refused children stay unseen)
 *   res fds N              RLIMIT_NOFILE = N, open /dev/null until it fails
 *   res paths DIR          ELOOP and ENAMETOOLONG cases below DIR
 *   res argv BYTES         execve /bin/true (here: ourselves) with BYTES of arguments
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *en(int e) { return strerrorname_np(e) ? strerrorname_np(e) : "E?"; }

static int forks(void)
{
    int n = 0, err = 0;
    for (; n < 100000; n++) {
        pid_t p = fork();
        if (p == 0) {
            pause();
            _exit(0);
        }
        if (p < 0) {
            err = errno;
            break;
        }
    }
    printf("forks %d %s", n, err ? en(err) : "none");
    pid_t v = vfork();
    if (v == 0)
        _exit(0);
    int verr = v < 0 ? errno : 0;
    long f = syscall(SYS_fork);
    if (f == 0)
        _exit(0);
    int ferr = f < 0 ? errno : 0;
    int st;
    pid_t w = waitpid(-1, &st, WNOHANG);
    printf(" vfork %s fork %s wait %d\n", verr ? en(verr) : "none", ferr ? en(ferr) : "none",
           (int)w);
    fflush(stdout);
    kill(0, SIGTERM);
    return 0;
}

static int fds(int limit)
{
    struct rlimit r = {limit, limit};
    setrlimit(RLIMIT_NOFILE, &r);
    int n = 0, fd;
    while ((fd = open("/dev/null", O_RDONLY)) >= 0)
        n++;
    int e1 = errno;
    /* the kernel goes on: one freed, one more open works */
    close(3);
    int again = open("/tmp", O_RDONLY | O_DIRECTORY);
    printf("fds %d %s again=%d\n", n, en(e1), again);
    return 0;
}

static void try_open(const char *what, const char *p)
{
    int fd = open(p, O_RDONLY);
    printf("%s %s\n", what, fd >= 0 ? "OK" : en(errno));
    if (fd >= 0)
        close(fd);
}

static int paths(const char *dir)
{
    char a[8192], b[8192];
    if (chdir(dir) != 0)
        return printf("chdir %s\n", en(errno)), 1;
    close(open("target", O_WRONLY | O_CREAT, 0644));
    symlink("loop", "loop");
    symlink("pong", "ping");
    symlink("ping", "pong");
    /* chains of 40 and 41 links: Linux follows 40 */
    symlink("target", "c0");
    for (int i = 1; i <= 41; i++) {
        snprintf(a, sizeof a, "c%d", i - 1);
        snprintf(b, sizeof b, "c%d", i);
        symlink(a, b);
    }
    try_open("loop", "loop");
    try_open("pingpong", "ping");
    try_open("chain40", "c40");
    try_open("chain41", "c41");
    try_open("loop-dir", "loop/x");
    memset(a, 'a', 255);
    a[255] = 0;
    try_open("name255", a);
    memset(a, 'a', 256);
    a[256] = 0;
    try_open("name256", a);
    for (int i = 0; i < 4094; i += 2)
        a[i] = '.', a[i + 1] = '/';
    strcpy(a + 4094, "t");
    try_open("path4095", a);       /* 4095 bytes + NUL: fits PATH_MAX */
    for (int i = 0; i < 4096; i += 2)
        a[i] = '.', a[i + 1] = '/';
    strcpy(a + 4096, "target");
    try_open("path4102", a);
    return 0;
}

static int big_argv(long bytes, const char *self)
{
    long n = bytes / 1000 + 1;
    char **v = calloc(n + 3, sizeof *v);
    char *arg = malloc(1000);
    memset(arg, 'x', 999);
    arg[999] = 0;
    v[0] = (char *)self;
    v[1] = "done";
    for (long i = 0; i < n; i++)
        v[i + 2] = arg;
    execv(self, v);
    printf("argv %ld %s\n", bytes, en(errno));
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 2 && !strcmp(argv[1], "done"))
        return printf("argv exec OK\n"), 0;
    if (argc >= 2 && !strcmp(argv[1], "forks"))
        return forks();
    if (argc >= 3 && !strcmp(argv[1], "fds"))
        return fds(atoi(argv[2]));
    if (argc >= 3 && !strcmp(argv[1], "paths"))
        return paths(argv[2]);
    if (argc >= 3 && !strcmp(argv[1], "argv"))
        return big_argv(atol(argv[2]), argv[0]);
    fprintf(stderr, "usage: res forks|fds N|paths DIR|argv BYTES\n");
    return 2;
}
