/* Change a file's attributes through its descriptor (fchmod, fchown,
 * futimens = utimensat(fd, NULL, times, 0)), each call twice, and after each
 * step look at the file every way (fstat, fstatat with an empty path, stat,
 * lstat, fstatat by path), twice: the answers must agree. Prints only what a
 * host run on a tmpfs prints too: modes, ids, sizes, errno names, times it set
 * itself and relations of the others ("ctime+" = ctime moved forward).
 *
 *   fdattrseq DIR            the sequence, as root, in the directory DIR
 *   fdattrseq --erofs P...   open each P read-only and try the three calls
 *   fdattrseq --remount MNT P   the calls on P before, while and after MNT
 *                            is remounted read-only (a bind remount)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "scratchdir.h"

static struct timespec before, after;   /* around the last call */


static const char *ename(int r, int e) {
    return r == 0 ? "ok" : strerrorname_np(e);
}

static int ts_cmp(struct timespec a, struct timespec b) {
    return a.tv_sec != b.tv_sec ? (a.tv_sec < b.tv_sec ? -1 : 1)
                                : (a.tv_nsec < b.tv_nsec ? -1 : a.tv_nsec > b.tv_nsec);
}

/* Until even the coarse clock (a tmpfs's, before multigrain times) is past
 * ctime: a ctime that did not move then did not move because of the call. */
static void tick(const struct stat *s) {
    struct timespec now, t = {0, 500 * 1000};
    for (int i = 0; i < 100; i++) {
        clock_gettime(CLOCK_REALTIME_COARSE, &now);
        if (ts_cmp(now, s->st_ctim) > 0)
            return;
        nanosleep(&t, NULL);
    }
}

static int fst(int fd, struct stat *s) {
    return syscall(SYS_fstat, fd, s);
}

static const char *moved(const struct stat *b, const struct stat *a) {
    int c = ts_cmp(a->st_ctim, b->st_ctim);
    return c > 0 ? "ctime+" : c == 0 ? "ctime=" : "ctime-BACKWARDS";
}

/* Each call twice on fd's file; per call its result and whether ctime moved. */
#define TWICE(label, fd, call)                                                  \
    do {                                                                        \
        printf("%-34s", label);                                                 \
        for (int i_ = 0; i_ < 2; i_++) {                                        \
            struct stat b_, a_;                                                 \
            int fb_ = fst(fd, &b_);                                             \
            if (!fb_)                                                           \
                tick(&b_);                                                      \
            clock_gettime(CLOCK_REALTIME_COARSE, &before);                      \
            errno = 0;                                                          \
            int r_ = (call);                                                    \
            int e_ = errno;                                                     \
            clock_gettime(CLOCK_REALTIME, &after);                              \
            int fa_ = fst(fd, &a_);                                             \
            printf(" %s/%s", ename(r_, e_), fb_ || fa_ ? "nofstat" : moved(&b_, &a_)); \
        }                                                                       \
        printf("\n");                                                           \
        fflush(stdout);                                                         \
    } while (0)

static int agree(const struct stat *a, const struct stat *b) {
    return a->st_mode == b->st_mode && a->st_uid == b->st_uid && a->st_gid == b->st_gid &&
           a->st_nlink == b->st_nlink && a->st_size == b->st_size &&
           ts_cmp(a->st_atim, b->st_atim) == 0 && ts_cmp(a->st_mtim, b->st_mtim) == 0 &&
           ts_cmp(a->st_ctim, b->st_ctim) == 0;
}

/* Every way, twice: fd (if >= 0) and path (if not NULL) must give the same
 * answer. Prints the file's mode, ids and size; returns it in *out. */
static void look(const char *step, const char *path, int fd, struct stat *out) {
    struct stat ref, s;
    int ok = 1, have = 0;
    if (out)
        memset(out, 0, sizeof *out);
    for (int round = 0; round < 2; round++) {
        if (fd >= 0) {
            if (fst(fd, &s) != 0) { printf("  %s fstat %s\n", step, ename(-1, errno)); return; }
            if (!have) { ref = s; have = 1; }
            ok &= agree(&ref, &s);
            ok &= syscall(SYS_newfstatat, fd, "", &s, AT_EMPTY_PATH) == 0 && agree(&ref, &s);
        }
        if (path) {
            if (syscall(SYS_stat, path, &s) != 0) {
                printf("  %s stat %s\n", step, ename(-1, errno));
                if (!have) return;
                continue;
            }
            if (!have) { ref = s; have = 1; }
            ok &= agree(&ref, &s);
            ok &= syscall(SYS_lstat, path, &s) == 0 && agree(&ref, &s);
            ok &= syscall(SYS_newfstatat, AT_FDCWD, path, &s, 0) == 0 && agree(&ref, &s);
        }
    }
    if (!ok)
        printf("  %s MISMATCH between the ways of stat\n", step);
    printf("  %-32s mode=%o uid=%u gid=%u nlink=%lu size=%ld\n", step, ref.st_mode,
           ref.st_uid, ref.st_gid, (unsigned long)ref.st_nlink,
           S_ISDIR(ref.st_mode) ? 0L : (long)ref.st_size);
    if (out)
        *out = ref;
}

static void times_of(const struct stat *s) {
    printf("  atime=%ld.%09ld mtime=%ld.%09ld\n", (long)s->st_atim.tv_sec, s->st_atim.tv_nsec,
           (long)s->st_mtim.tv_sec, s->st_mtim.tv_nsec);
}

/* within the last call (the kernel's clock may be the coarse one) */
static const char *nowish(struct timespec t) {
    return ts_cmp(t, before) >= 0 && ts_cmp(t, after) <= 0 ? "yes" : "no";
}

static void relations(const struct stat *s) {
    printf("  atime now-ish: %s, mtime now-ish: %s, ctime now-ish: %s\n",
           nowish(s->st_atim), nowish(s->st_mtim), nowish(s->st_ctim));
}

static int futimens2(int fd, long as, long ans, long ms, long mns) {
    struct timespec t[2] = {{as, ans}, {ms, mns}};
    return syscall(SYS_utimensat, fd, NULL, t, 0);
}

static int touch(int fd) {
    return syscall(SYS_utimensat, fd, NULL, NULL, 0);
}

static int make(const char *path, int mode) {
    int fd = open(path, O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0 || fchmod(fd, mode) != 0 || write(fd, "data", 4) != 4) {
        printf("cannot make %s: %s\n", path, strerror(errno));
        exit(2);
    }
    return fd;
}

/* The three calls through one descriptor, each twice. */
static void three(const char *label, int fd) {
    char l[64];
    snprintf(l, sizeof l, "%s fchmod", label);
    TWICE(l, fd, fchmod(fd, 0644));
    snprintf(l, sizeof l, "%s fchown", label);
    TWICE(l, fd, fchown(fd, 0, 0));
    snprintf(l, sizeof l, "%s futimens NULL", label);
    TWICE(l, fd, touch(fd));
}

static int erofs(int n, char **paths) {
    char l[32];
    /* one after the other: the same descriptor number each time */
    for (int i = 0; i < n; i++) {
        int fd = open(paths[i], O_RDONLY);
        if (fd < 0) { printf("open %d: %s\n", i, strerror(errno)); return 2; }
        snprintf(l, sizeof l, "path%d once", i);
        three(l, fd);
        close(fd);
    }
    return 0;
}

static int remount(const char *mnt, const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) { printf("open: %s\n", strerror(errno)); return 2; }
    three("rw", fd);
    int r = mount(NULL, mnt, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL);
    printf("remount ro: %s\n", ename(r, errno));
    three("ro", fd);
    r = mount(NULL, mnt, NULL, MS_REMOUNT | MS_BIND, NULL);
    printf("remount rw: %s\n", ename(r, errno));
    three("rw-again", fd);
    return 0;
}

/* uid 1000 (no groups but 1000) with descriptors root opened before the fork;
 * its working directory is DIR/kid, its own. */
static void child(int rro, int rrw, int sro, int uro) {
    struct stat s;
    if (setgroups(0, NULL) != 0 || setgid(1000) != 0 || setuid(1000) != 0) _exit(3);
    printf("child: root's 0644 file\n");
    TWICE("fchmod(r, 0666)", rro, fchmod(rro, 0666));
    TWICE("fchown(r, 1000, -1)", rro, fchown(rro, 1000, -1));
    TWICE("fchown(r, -1, -1)", rro, fchown(rro, -1, -1));
    TWICE("futimens(r, explicit)", rro, futimens2(rro, 5, 0, 6, 0));
    TWICE("futimens(r ro, NULL)", rro, touch(rro));
    TWICE("futimens(r rw, NULL)", rrw, touch(rrw));
    TWICE("futimens(r, NOW NOW)", rro, futimens2(rro, 0, UTIME_NOW, 0, UTIME_NOW));
    TWICE("futimens(r, OMIT OMIT)", rro, futimens2(rro, 0, UTIME_OMIT, 0, UTIME_OMIT));
    look("r", "../r", rro, NULL);

    printf("child: root's 0666 file, opened read-only\n");
    TWICE("futimens(s, NULL)", sro, touch(sro));
    relations((fst(sro, &s), &s));
    TWICE("futimens(s, NOW NOW)", sro, futimens2(sro, 0, UTIME_NOW, 0, UTIME_NOW));
    TWICE("futimens(s, NOW OMIT)", sro, futimens2(sro, 0, UTIME_NOW, 0, UTIME_OMIT));
    TWICE("futimens(s, explicit)", sro, futimens2(sro, 5, 0, 6, 0));
    TWICE("fchmod(s, 0600)", sro, fchmod(sro, 0600));
    look("s", "../s", sro, NULL);

    printf("child: its own file with group 0\n");
    TWICE("fchmod(u, 02755)", uro, fchmod(uro, 02755));
    look("u", "../u", uro, NULL);

    printf("child: a file of its own\n");
    int k = open("k", O_CREAT | O_EXCL | O_RDWR, 0600);
    if (k < 0) { printf("open k: %s\n", strerror(errno)); fflush(stdout); _exit(2); }
    look("created", "k", k, NULL);
    TWICE("fchmod(k, 0640)", k, fchmod(k, 0640));
    look("fchmod 0640", "k", k, NULL);
    TWICE("fchmod(k, 02755)", k, fchmod(k, 02755));
    look("fchmod 02755", "k", k, NULL);
    TWICE("fchown(k, -1, 1000)", k, fchown(k, -1, 1000));
    look("fchown -1 1000", "k", k, NULL);
    TWICE("fchown(k, -1, 0)", k, fchown(k, -1, 0));
    TWICE("fchown(k, 0, -1)", k, fchown(k, 0, -1));
    TWICE("fchown(k, 1000, -1)", k, fchown(k, 1000, -1));
    look("fchowns", "k", k, NULL);
    TWICE("fchmod(k, 04755)", k, fchmod(k, 04755));
    look("fchmod 04755", "k", k, NULL);
    /* (not written while set-uid: Linux would clear the bit, as this task
     * lacks CAP_FSETID, and umlpy's native writes do not) */
    TWICE("fchmod(k, 0755)", k, fchmod(k, 0755));
    TWICE("write(k)", k, write(k, "abc", 3) == 3 ? 0 : -1);
    look("written", "k", k, NULL);
    TWICE("fchmod(k, 02750)", k, fchmod(k, 02750));
    TWICE("fchown(k, -1, -1)", k, fchown(k, -1, -1));
    look("fchown -1 -1", "k", k, NULL);
    TWICE("futimens(k, explicit)", k, futimens2(k, 1500000000, 11, 1600000000, 22));
    look("futimens", "k", k, &s);
    times_of(&s);
    fflush(stdout);
    _exit(0);
}

int main(int argc, char **argv) {
    struct stat s, s2;
    if (argc > 2 && strcmp(argv[1], "--erofs") == 0)
        return erofs(argc - 2, argv + 2);
    if (argc == 4 && strcmp(argv[1], "--remount") == 0)
        return remount(argv[2], argv[3]);
    /* --linked-only: no calls on an open file that lost its last name (umlpy's
     * hostfs reaches a file by its name, which an unlinked one no longer has) */
    int linked_only = argc == 3 && strcmp(argv[2], "--linked-only") == 0;
    if (argc != 2 && !linked_only) {
        fprintf(stderr, "usage: fdattrseq DIR [--linked-only]\n");
        return 2;
    }
    snprintf(dir, sizeof dir, "%s", argv[1]);
    umask(022);

    printf("== create and write\n");
    int fd = open(at("f"), O_CREAT | O_EXCL | O_WRONLY, 0600);
    if (fd < 0) { printf("open: %s\n", strerror(errno)); return 2; }
    look("created", at("f"), fd, NULL);
    if (write(fd, "hello, world\n", 13) != 13) return 2;
    look("written", at("f"), fd, NULL);

    printf("== futimens\n");
    TWICE("futimens(explicit)", fd, futimens2(fd, 1000000000, 111, 1100000000, 222));
    look("explicit", at("f"), fd, &s);
    times_of(&s);
    TWICE("futimens(OMIT, explicit)", fd, futimens2(fd, 0, UTIME_OMIT, 1200000000, 333));
    look("omit-atime", at("f"), fd, &s);
    times_of(&s);
    TWICE("futimens(explicit, OMIT)", fd, futimens2(fd, 1300000000, 444, 0, UTIME_OMIT));
    look("omit-mtime", at("f"), fd, &s);
    times_of(&s);
    TWICE("futimens(NULL)", fd, touch(fd));
    look("null", at("f"), fd, &s);
    relations(&s);
    TWICE("futimens(explicit)", fd, futimens2(fd, 1000000000, 0, 1000000000, 999999999));
    look("explicit-again", at("f"), fd, &s);
    times_of(&s);
    TWICE("futimens(NOW, NOW)", fd, futimens2(fd, 0, UTIME_NOW, 0, UTIME_NOW));
    look("now-now", at("f"), fd, &s);
    relations(&s);
    TWICE("futimens(NOW, explicit)", fd, futimens2(fd, 12345, UTIME_NOW, 1400000000, 555));
    look("now-explicit", at("f"), fd, &s);
    printf("  atime now-ish: %s, mtime=%ld.%09ld\n", nowish(s.st_atim),
           (long)s.st_mtim.tv_sec, s.st_mtim.tv_nsec);
    TWICE("futimens(explicit)", fd, futimens2(fd, 900000000, 1, 900000000, 2));
    look("explicit-3", at("f"), fd, &s);
    TWICE("futimens(OMIT, OMIT)", fd, futimens2(fd, 0, UTIME_OMIT, 0, UTIME_OMIT));
    look("omit-omit", at("f"), fd, &s2);
    printf("  times kept: %s\n", ts_cmp(s.st_atim, s2.st_atim) == 0 &&
                                 ts_cmp(s.st_mtim, s2.st_mtim) == 0 ? "yes" : "no");
    TWICE("futimens(nsec 1e9)", fd, futimens2(fd, 1, 1000000000, 1, 0));
    TWICE("futimens(nsec -1)", fd, futimens2(fd, 1, 0, 1, -1));
    TWICE("futimens(OMIT, nsec 1e9)", fd, futimens2(fd, 0, UTIME_OMIT, 1, 1000000000));
    look("einval", at("f"), fd, &s);
    times_of(&s);

    printf("== fchown\n");
    TWICE("fchown(0, 0)", fd, fchown(fd, 0, 0));
    look("0 0", at("f"), fd, NULL);
    TWICE("fchown(1000, 1001)", fd, fchown(fd, 1000, 1001));
    look("1000 1001", at("f"), fd, NULL);
    TWICE("fchown(-1, -1)", fd, fchown(fd, -1, -1));
    look("-1 -1", at("f"), fd, NULL);
    TWICE("fchown(-1, 7)", fd, fchown(fd, -1, 7));
    look("-1 7", at("f"), fd, NULL);

    printf("== fchmod and the set-id bits\n");
    static const struct { mode_t mode; const char *after_chown; } setid[] = {
        {04755, "setuid cleared"}, {02755, "setgid cleared"}, {02745, "setgid kept"},
    };
    for (size_t k = 0; k < sizeof setid / sizeof *setid; k++) {
        char label[32], shown[8];
        snprintf(label, sizeof label, "fchmod(0%o)", (unsigned)setid[k].mode);
        snprintf(shown, sizeof shown, "0%o", (unsigned)setid[k].mode);
        TWICE(label, fd, fchmod(fd, setid[k].mode));
        look(shown, at("f"), fd, NULL);
        TWICE("fchown(0, -1)", fd, fchown(fd, 0, -1));
        look(setid[k].after_chown, at("f"), fd, NULL);
    }
    TWICE("fchmod(07777)", fd, fchmod(fd, 07777));
    look("07777", at("f"), fd, NULL);
    TWICE("fchmod(0177777)", fd, fchmod(fd, 0177777));
    look("0177777", at("f"), fd, NULL);
    TWICE("write", fd, write(fd, "more\n", 5) == 5 ? 0 : -1);
    look("written after fchmod", at("f"), fd, NULL);
    TWICE("fchmod(0640)", fd, fchmod(fd, 0640));
    TWICE("pwrite at 4096", fd, pwrite(fd, "x", 1, 4096) == 1 ? 0 : -1);
    look("grown after fchmod", at("f"), fd, NULL);
    TWICE("ftruncate(7)", fd, ftruncate(fd, 7));
    TWICE("fchmod(0600)", fd, fchmod(fd, 0600));
    look("truncated", at("f"), fd, NULL);

    printf("== by path and by another descriptor\n");
    int ro = open(at("f"), O_RDONLY);
    TWICE("chmod(path, 0604)", fd, chmod(at("f"), 0604));
    look("chmod", at("f"), fd, NULL);
    TWICE("fchmod(0660)", fd, fchmod(fd, 0660));
    look("fchmod", at("f"), ro, NULL);
    TWICE("chown(path, 1, 2)", fd, chown(at("f"), 1, 2));
    look("chown", at("f"), fd, NULL);
    TWICE("fchown(3, 4)", fd, fchown(fd, 3, 4));
    look("fchown", at("f"), ro, NULL);
    TWICE("fchmod(read-only fd, 0606)", ro, fchmod(ro, 0606));
    look("via ro", at("f"), fd, NULL);
    TWICE("fchown(read-only fd, 0, 0)", ro, fchown(ro, 0, 0));
    look("via ro", at("f"), fd, NULL);
    {
        struct timespec t[2] = {{1500000000, 1}, {1500000001, 2}};
        TWICE("utimensat(path, explicit)", fd, utimensat(AT_FDCWD, at("f"), t, 0));
    }
    look("utimensat", at("f"), fd, &s);
    times_of(&s);
    TWICE("futimens(read-only fd, explicit)", ro, futimens2(ro, 1600000000, 3, 1600000001, 4));
    look("futimens", at("f"), fd, &s);
    times_of(&s);
    int du = dup(fd);
    TWICE("fchmod(dup, 0620)", du, fchmod(du, 0620));
    look("dup", at("f"), fd, NULL);
    close(du);

    printf("== O_PATH descriptor\n");
    int op = open(at("f"), O_PATH);
    TWICE("fchmod(O_PATH)", op, fchmod(op, 0600));
    TWICE("fchown(O_PATH)", op, fchown(op, 0, 0));
    TWICE("futimens(O_PATH, explicit)", op, futimens2(op, 1, 0, 1, 0));
    TWICE("futimens(O_PATH, NULL)", op, touch(op));
    TWICE("futimens(O_PATH, OMIT OMIT)", op, futimens2(op, 0, UTIME_OMIT, 0, UTIME_OMIT));
    TWICE("fchownat(O_PATH, \"\", -1, 5)", op, fchownat(op, "", -1, 5, AT_EMPTY_PATH));
    look("O_PATH", at("f"), fd, NULL);
    TWICE("fchmod(0600)", fd, fchmod(fd, 0600));
    look("after O_PATH", at("f"), op, NULL);
    close(op);

    printf("== a directory\n");
    mkdir(at("d"), 0755);
    int dfd = open(at("d"), O_RDONLY | O_DIRECTORY);
    TWICE("fchmod(dir, 02775)", dfd, fchmod(dfd, 02775));
    TWICE("fchown(dir, 0, 1000)", dfd, fchown(dfd, 0, 1000));
    TWICE("futimens(dir, explicit)", dfd, futimens2(dfd, 1700000000, 5, 1700000001, 6));
    look("dir", at("d"), dfd, &s);
    times_of(&s);
    close(dfd);

    printf("== a descriptor number closed and reused\n");
    int g = open(at("g"), O_CREAT | O_EXCL | O_RDWR, 0600);
    TWICE("fchmod(g, 0640)", g, fchmod(g, 0640));
    TWICE("fchown(g, 1000, 1000)", g, fchown(g, 1000, 1000));
    close(g);
    TWICE("closed fchmod", g, fchmod(g, 0600));
    TWICE("closed fchown", g, fchown(g, 0, 0));
    TWICE("closed futimens", g, touch(g));
    TWICE("closed futimens OMIT OMIT", g, futimens2(g, 0, UTIME_OMIT, 0, UTIME_OMIT));
    int h = open(at("h"), O_CREAT | O_EXCL | O_RDWR, 0600);
    printf("  same number: %s\n", h == g ? "yes" : "no");
    TWICE("fchmod(h, 0604)", h, fchmod(h, 0604));
    TWICE("fchown(h, 7, 8)", h, fchown(h, 7, 8));
    look("h", at("h"), h, NULL);
    look("g", at("g"), -1, NULL);
    int g2 = open(at("g"), O_RDONLY);
    dup2(g2, h);
    TWICE("fchmod(h = dup2 of g, 0444)", h, fchmod(h, 0444));
    TWICE("fchown(h = dup2 of g, 9, 9)", h, fchown(h, 9, 9));
    look("g", at("g"), g2, NULL);
    look("h", at("h"), -1, NULL);
    close(g2);
    close(h);

    printf("== renamed, then unlinked\n");
    rename(at("f"), at("f2"));
    TWICE("fchmod(0640)", fd, fchmod(fd, 0640));
    look("renamed", at("f2"), fd, NULL);
    if (linked_only)
        goto unlinked_done;
    unlink(at("f2"));
    TWICE("fchmod(0600)", fd, fchmod(fd, 0600));
    TWICE("fchown(5, 6)", fd, fchown(fd, 5, 6));
    TWICE("futimens(explicit)", fd, futimens2(fd, 1800000000, 7, 1800000001, 8));
    look("unlinked", NULL, fd, &s);
    times_of(&s);
    look("unlinked path", at("f2"), -1, NULL);
unlinked_done:
    close(fd);
    close(ro);

    printf("== uid 1000 in a child\n");
    int r = make(at("r"), 0644);
    int rro = open(at("r"), O_RDONLY), rrw = open(at("r"), O_RDWR);
    int sf = make(at("s"), 0666);
    int sro = open(at("s"), O_RDONLY);
    int uf = make(at("u"), 0644);
    if (fchown(uf, 1000, 0) != 0) return 2;
    int uro = open(at("u"), O_RDONLY);
    close(r);
    close(sf);
    close(uf);
    if (mkdir(at("kid"), 0755) != 0 || chown(at("kid"), 1000, 1000) != 0) return 2;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (chdir(at("kid")) != 0) _exit(3);
        child(rro, rrw, sro, uro);
    }
    int status;
    waitpid(pid, &status, 0);
    printf("child status %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    look("kid/k", at("kid/k"), -1, &s);
    times_of(&s);
    look("r", at("r"), rro, NULL);
    look("u", at("u"), uro, NULL);
    return 0;
}
