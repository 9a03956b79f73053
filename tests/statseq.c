/* Stat a changing file every way (stat, lstat, fstat, fstatat with an empty
 * path), twice each: the answers must agree, and follow every change. Prints
 * what a host run prints too. Usage: statseq DIR */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "scratchdir.h"

static int bad;

static void show(const char *step, const struct stat *s) {
    printf("%-10s mode=%o nlink=%lu uid=%u gid=%u size=%ld\n", step, s->st_mode,
           (unsigned long)s->st_nlink, s->st_uid, s->st_gid,
           S_ISDIR(s->st_mode) ? 0L : (long)s->st_size);    /* a directory's size is the fs's own */
}

static int same(const struct stat *a, const struct stat *b) {
    /* atime aside: a host tmpfs may move it under relatime */
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_mode == b->st_mode &&
           a->st_nlink == b->st_nlink && a->st_uid == b->st_uid && a->st_gid == b->st_gid &&
           a->st_size == b->st_size && a->st_blocks == b->st_blocks &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Every way, twice; fd < 0: by path only. stat and lstat differ on a
 * symlink: each is checked against its own kind. */
static void check(const char *step, const char *name, int fd) {
    struct stat ref, lref, s;
    const char *p = at(name);
    if (syscall(SYS_stat, p, &ref) != 0) {
        int e = errno;
        int again = syscall(SYS_stat, p, &s) != 0 ? errno : 0;
        int viaat = syscall(SYS_newfstatat, AT_FDCWD, p, &s, 0) != 0 ? errno : 0;
        printf("%-10s %s%s\n", step, strerror(e), e == again && e == viaat ? "" : " MISMATCH");
        bad |= !(e == again && e == viaat);
        return;
    }
    if (syscall(SYS_lstat, p, &lref) != 0)
        bad = 1;
    for (int round = 0; round < 2; round++) {
        int ok = syscall(SYS_stat, p, &s) == 0 && same(&ref, &s);
        ok &= syscall(SYS_newfstatat, AT_FDCWD, p, &s, 0) == 0 && same(&ref, &s);
        ok &= syscall(SYS_lstat, p, &s) == 0 && same(&lref, &s);
        ok &= syscall(SYS_newfstatat, AT_FDCWD, p, &s, AT_SYMLINK_NOFOLLOW) == 0 && same(&lref, &s);
        if (fd >= 0) {
            ok &= syscall(SYS_fstat, fd, &s) == 0 && same(&ref, &s);
            ok &= syscall(SYS_newfstatat, fd, "", &s, AT_EMPTY_PATH) == 0 && same(&ref, &s);
        }
        if (!ok) {
            printf("%-10s MISMATCH in round %d\n", step, round);
            bad = 1;
        }
    }
    show(step, &ref);
    if (!S_ISREG(lref.st_mode))
        printf("%-10s lstat mode=%o\n", step, lref.st_mode);
}

int main(int argc, char **argv) {
    snprintf(dir, sizeof dir, "%s", argc > 1 ? argv[1] : ".");
    umask(022);
    check("absent", "f", -1);
    int fd = open(at("f"), O_CREAT | O_RDWR, 0644);
    check("created", "f", fd);
    if (write(fd, "0123456789", 10) != 10) return 2;
    check("written", "f", fd);
    int ro = open(at("f"), O_RDONLY);
    check("opened", "f", ro);
    if (pwrite(fd, "abc", 3, 4093) != 3) return 2;
    check("grown", "f", ro);
    fchmod(fd, 0600);
    check("fchmod", "f", ro);
    chmod(at("f"), 0640);
    check("chmod", "f", ro);
    link(at("f"), at("g"));
    check("linked", "f", ro);
    unlink(at("g"));
    check("unlinked", "f", ro);
    if (ftruncate(fd, 5) != 0) return 2;
    check("truncated", "f", ro);
    struct timespec ts[2] = {{1000000000, 5}, {1200000000, 7}};
    futimens(fd, ts);
    check("futimens", "f", ro);
    struct stat s;
    fstat(fd, &s);
    printf("times     %ld.%09ld\n", (long)s.st_mtim.tv_sec, s.st_mtim.tv_nsec);
    rename(at("f"), at("h"));
    check("renamed-f", "f", -1);
    check("renamed-h", "h", ro);
    mkdir(at("d"), 0755);
    check("mkdir", "d", -1);
    close(open(at("d/x"), O_CREAT | O_WRONLY, 0600));
    check("d-filled", "d", -1);
    symlink("h", at("l"));
    check("symlink", "l", -1);
    check("absent2", "nope", -1);
    close(open(at("nope"), O_CREAT | O_WRONLY, 0600));
    check("present", "nope", -1);
    /* another task with other credentials stats what root stat'ed */
    mkdir(at("private"), 0700);
    close(open(at("private/f"), O_CREAT | O_WRONLY, 0600));
    check("private", "private/f", -1);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (setgid(1000) != 0 || setuid(1000) != 0) _exit(3);
        check("as-1000", "private/f", -1);
        fflush(stdout);
        _exit(bad);
    }
    int status;
    waitpid(pid, &status, 0);
    check("parent", "private/f", -1);
    printf("child %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    /* a uid-1000 process already running asks right after root's answer, with
     * only native calls (pipe reads and writes) in between */
    int ready[2], go[2];
    if (pipe(ready) != 0 || pipe(go) != 0) return 2;
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        char b;
        if (setgid(1000) != 0 || setuid(1000) != 0) _exit(3);
        if (write(ready[1], "r", 1) != 1 || read(go[0], &b, 1) != 1) _exit(4);
        struct stat cs;
        int r = syscall(SYS_stat, at("private/f"), &cs);
        printf("waiting   %s\n", r ? strerror(errno) : "visible");
        fflush(stdout);
        _exit(0);
    }
    char b;
    if (read(ready[0], &b, 1) != 1) return 2;
    check("published", "private/f", -1);
    fflush(stdout);
    if (write(go[1], "g", 1) != 1) return 2;
    waitpid(pid, &status, 0);
    printf("waiter %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return bad;
}
