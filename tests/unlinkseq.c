/* Remove files one after the other in one directory (unlink, unlinkat):
 * after the kernel in Python creates or removes a name in a tmpfs
 * directory, the next unlinks there by the same task and path text may be
 * made by the accelerator (csrc/fastcreate.c). Prints only what a host run
 * on a tmpfs prints too: errno names, link counts, sizes, modes and
 * relations of times (never an inode number or a time of day).
 *
 *   unlinkseq DIR     as root, in the empty directory DIR (mode 0755)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "scratchdir.h"

static const char *ename(long r, int e) {
    return r >= 0 ? "ok" : strerrorname_np(e);
}

/* The result of the call just made (errno read after it). */
static const char *result(long r) {
    return ename(r, errno);
}

static const char *yes(int c) {
    return c ? "yes" : "no";
}

static int ts_cmp(struct timespec a, struct timespec b) {
    return a.tv_sec != b.tv_sec ? (a.tv_sec < b.tv_sec ? -1 : 1)
                                : (a.tv_nsec < b.tv_nsec ? -1 : a.tv_nsec > b.tv_nsec);
}

static void make(const char *name, const char *data) {
    int fd = open(at(name), O_CREAT | O_EXCL | O_WRONLY, 0644);
    if (fd < 0) {
        printf("  create %s: %s\n", name, strerrorname_np(errno));
        return;
    }
    if (data && write(fd, data, strlen(data)) < 0)
        printf("  write %s: %s\n", name, strerrorname_np(errno));
    close(fd);
}

static void make_n(const char *prefix, int n) {
    char name[64];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%s%02d", prefix, i);
        make(name, prefix);
    }
}

static void rm(const char *name) {
    errno = 0;
    int r = unlink(at(name));
    printf("  unlink %-14s %s\n", name, ename(r, errno));
}

static void show_path(const char *name) {
    struct stat s;
    if (lstat(at(name), &s) != 0)
        printf("  %-14s lstat %s\n", name, strerrorname_np(errno));
    else
        printf("  %-14s mode=%o nlink=%lu size=%ld\n", name, (unsigned)s.st_mode,
               (unsigned long)s.st_nlink, (long)s.st_size);
}

/* The names a directory lists, sorted, on one line. */
static void listing(const char *name) {
    struct dirent **list;
    int n = scandir(at(name), &list, NULL, alphasort);
    printf("  %s holds:", name);
    for (int i = 0; i < n; i++) {
        printf(" %s", list[i]->d_name);
        free(list[i]);
    }
    printf(n < 0 ? " (%s)\n" : "\n", strerrorname_np(errno));
    free(list);
}

static void step1(void) {
    char name[64];
    struct stat s, d0, d1;
    printf("== 1. 30 files made, then unlinked in turn by path\n");
    mkdir(at("u"), 0755);
    make_n("u/f", 30);
    show_path("u");
    for (int i = 0; i < 30; i++) {
        struct timespec before;
        snprintf(name, sizeof name, "u/f%02d", i);
        stat(at("u"), &d0);
        clock_gettime(CLOCK_REALTIME_COARSE, &before);
        int r = unlink(at(name));
        int e = errno;
        int gone = lstat(at(name), &s) != 0 && errno == ENOENT;
        stat(at("u"), &d1);
        printf("  unlink %s %s, gone: %s, dir size %ld -> %ld, dir mtime moved: %s,"
               " dir ctime == mtime: %s\n", name, ename(r, e), yes(gone),
               (long)d0.st_size, (long)d1.st_size,
               yes(ts_cmp(d1.st_mtim, before) >= 0),
               yes(ts_cmp(d1.st_ctim, d1.st_mtim) == 0));
    }
    listing("u");
    show_path("u");
}

static void step2(void) {
    struct stat s;
    char buf[32] = {0}, target[600];
    printf("== 2. open files, links, the same name again\n");
    make_n("u/g", 3);
    make("u/open", "data");
    int fd = open(at("u/open"), O_RDWR);
    struct timespec before;
    clock_gettime(CLOCK_REALTIME_COARSE, &before);
    rm("u/open");
    if (fstat(fd, &s) == 0)
        printf("  open file after unlink: nlink=%lu size=%ld ctime moved: %s\n",
               (unsigned long)s.st_nlink, (long)s.st_size, yes(ts_cmp(s.st_ctim, before) >= 0));
    printf("  read back: %s\n", pread(fd, buf, 4, 0) == 4 ? buf : "SHORT");
    if (write(fd, "more", 4) != 4)
        printf("  write after unlink: %s\n", strerrorname_np(errno));
    snprintf(buf, sizeof buf, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(buf, target, sizeof target - 1);
    target[n > 0 ? n : 0] = 0;
    size_t dl = strlen(dir);
    printf("  /proc/self/fd: %s\n", n > 0 && strncmp(target, dir, dl) == 0 ? target + dl : target);
    close(fd);
    rm("u/open");
    make("u/open", "again");
    show_path("u/open");
    rm("u/open");
    /* the same name made and removed over and over */
    for (int i = 0; i < 40; i++) {
        int f = open(at("u/again"), O_CREAT | O_EXCL | O_WRONLY, 0600);
        int r = unlink(at("u/again"));
        if (f < 0 || r != 0)
            printf("  round %d: create %s unlink %s\n", i, ename(f, errno), ename(r, errno));
        if (f >= 0)
            close(f);
    }
    show_path("u/again");
    /* a hard link keeps the file */
    make("u/h1", "linked");
    if (link(at("u/h1"), at("u/h2")) != 0)
        printf("  link: %s\n", strerrorname_np(errno));
    make("u/h3", NULL);
    rm("u/h1");
    show_path("u/h2");
    rm("u/h2");
    rm("u/g00");
    rm("u/g01");
    listing("u");
}

static void step3(void) {
    printf("== 3. what unlink may not remove\n");
    make_n("u/k", 2);
    mkdir(at("u/sub"), 0755);
    make("u/k02", NULL);
    rm("u/sub");
    rm("u/sub/");
    rm("u/k02/");
    rm("u/.");
    rm("u/..");
    rm("u/nothing");
    rm("u/k02");
    rm("u/k02");
    rm("u/sub/none");
    rm("u/k00/x");
    if (symlink("k01", at("u/sym")) != 0 || symlink("gone", at("u/dangle")) != 0)
        printf("  symlink: %s\n", strerrorname_np(errno));
    if (mkfifo(at("u/fifo"), 0600) != 0)
        printf("  mkfifo: %s\n", strerrorname_np(errno));
    make("u/k03", NULL);
    rm("u/sym");
    show_path("u/k01");
    rm("u/dangle");
    rm("u/fifo");
    rm("u/k03");
    printf("  unlink(bad address) %s\n", result(unlink((const char *)8)));
    printf("  unlink(\"\") %s\n", result(unlink("")));
    listing("u");
}

static void step4(void) {
    char name[64];
    printf("== 4. unlinkat from a directory descriptor (rm -r)\n");
    mkdir(at("r"), 0755);
    make_n("r/e", 20);
    mkdir(at("r/in"), 0755);
    int dfd = open(at("r"), O_RDONLY | O_DIRECTORY);
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof name, "e%02d", i);
        int r = unlinkat(dfd, name, 0);
        if (r != 0 || i % 5 == 0)
            printf("  unlinkat %s %s\n", name, ename(r, errno));
    }
    printf("  unlinkat in %s\n", result(unlinkat(dfd, "in", 0)));
    make("r/flag", NULL);
    printf("  unlinkat flag 1 %s\n", result(unlinkat(dfd, "flag", 1)));
    printf("  unlinkat e00 again %s\n", result(unlinkat(dfd, "e00", 0)));
    printf("  unlinkat in AT_REMOVEDIR %s\n", result(unlinkat(dfd, "in", AT_REMOVEDIR)));
    printf("  unlinkat flag %s\n", result(unlinkat(dfd, "flag", 0)));
    close(dfd);
    listing("r");
    printf("  rmdir r %s\n", result(rmdir(at("r"))));
}

/* As uid 1000 in a sticky directory: its own files go, root's stay. */
static void step5(void) {
    printf("== 5. a sticky directory, and one the user may not write\n");
    mkdir(at("s"), 01777);
    chmod(at("s"), 01777);
    mkdir(at("ro"), 0755);
    make_n("s/root", 3);
    make_n("ro/root", 2);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (setgid(1000) != 0 || setuid(1000) != 0) {
            printf("  setuid: %s\n", strerrorname_np(errno));
            _exit(1);
        }
        make_n("s/mine", 6);
        rm("s/mine00");
        rm("s/mine01");
        rm("s/root00");
        rm("s/mine02");
        rm("s/root01");
        rm("s/mine03");
        rm("ro/root00");
        rm("s/mine04");
        fflush(stdout);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    printf("  child exit %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    listing("s");
    rm("s/mine05");
    rm("s/root00");
    rm("s/root01");
    rm("s/root02");
    listing("s");
}

static void step6(void) {
    char name[64];
    printf("== 6. 300 made and removed in a row\n");
    mkdir(at("big"), 0755);
    make_n("big/b", 99);
    make_n("big/c", 99);
    make_n("big/d", 99);
    make("big/last", NULL);
    show_path("big");
    int bad = 0;
    const char *pre[] = {"big/d", "big/b", "big/c"};
    for (int p = 0; p < 3; p++)
        for (int i = 0; i < 99; i++) {
            snprintf(name, sizeof name, "%s%02d", pre[p], i);
            if (unlink(at(name)) != 0 && bad++ < 5)
                printf("  unlink %s: %s\n", name, strerrorname_np(errno));
        }
    show_path("big");
    rm("big/last");
    listing("big");
    show_path("big");
    printf("  rmdir big %s\n", result(rmdir(at("big"))));
}

/* The path text C knows the directory by now names another one. */
static void step7(void) {
    printf("== 7. the directory renamed, another made under its name\n");
    mkdir(at("m"), 0755);
    make_n("m/f", 4);
    rm("m/f00");
    rm("m/f01");
    printf("  rename m m2 %s\n", result(rename(at("m"), at("m2"))));
    mkdir(at("m"), 0755);
    make("m/other", NULL);
    rm("m/f02");
    rm("m/other");
    rm("m/f03");
    listing("m");
    listing("m2");
    /* and by a descriptor of the old directory */
    int dfd = open(at("m2"), O_RDONLY | O_DIRECTORY);
    make("m2/x", NULL);
    printf("  unlinkat m2 f02 %s\n", result(unlinkat(dfd, "f02", 0)));
    printf("  rename m2 m3 %s\n", result(rename(at("m2"), at("m3"))));
    printf("  unlinkat m3 f03 %s\n", result(unlinkat(dfd, "f03", 0)));
    printf("  unlinkat m3 x %s\n", result(unlinkat(dfd, "x", 0)));
    close(dfd);
    listing("m3");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: unlinkseq DIR\n");
        return 2;
    }
    snprintf(dir, sizeof dir, "%s", argv[1]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    umask(022);
    step1();
    step2();
    step3();
    step4();
    step5();
    step6();
    step7();
    return 0;
}
