/* Create regular files one after the other in one directory (open, openat
 * and creat with O_CREAT): the first create in a directory reaches the
 * kernel in Python, the next ones there may be made by the accelerator
 * (csrc/fastcreate.c). Prints only what a host run on a tmpfs prints too:
 * modes, link counts, sizes, ids, errno names, times it set itself and
 * relations of the others (never an inode or device number or a time of
 * day).
 *
 *   createseq DIR               the sequence, as root, in the empty directory DIR
 *   createseq --nr-inodes DIR   DIR is a tmpfs mounted with nr_inodes=30:
 *                               create until it is full, free some, mount
 *                               another tmpfs on a directory of it
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "scratchdir.h"

#define CREATE_FLAGS (O_WRONLY | O_CREAT | O_EXCL | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)

static const char *ename(long r, int e) {
    return r >= 0 ? "ok" : strerrorname_np(e);
}

/* ---- every file the run created, by inode number ---- */

static ino_t inos[1024];
static int n_inos;

static void note_ino(ino_t ino) {
    if (n_inos < (int)(sizeof inos / sizeof *inos))
        inos[n_inos++] = ino;
}

static void note_fd(int fd) {
    struct stat s;
    if (fstat(fd, &s) == 0)
        note_ino(s.st_ino);
}

static void note_path(const char *path) {
    struct stat s;
    if (lstat(path, &s) == 0)
        note_ino(s.st_ino);
    else
        printf("  cannot note %s: %s\n", path + strlen(dir), strerrorname_np(errno));
}

static int cmp_ino(const void *a, const void *b) {
    ino_t x = *(const ino_t *)a, y = *(const ino_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- looking at files ---- */

static int ts_cmp(struct timespec a, struct timespec b) {
    return a.tv_sec != b.tv_sec ? (a.tv_sec < b.tv_sec ? -1 : 1)
                                : (a.tv_nsec < b.tv_nsec ? -1 : a.tv_nsec > b.tv_nsec);
}

static const char *yes(int c) {
    return c ? "yes" : "no";
}

static void show(const char *label, const struct stat *s) {
    printf("  %-12s mode=%o nlink=%lu size=%ld uid=%u gid=%u\n", label, (unsigned)s->st_mode,
           (unsigned long)s->st_nlink, (long)s->st_size, s->st_uid, s->st_gid);
}

/* A descriptor's file: fstat, the open file's flags and FD_CLOEXEC. */
static void show_fd(const char *label, int fd) {
    struct stat s;
    if (fstat(fd, &s) != 0) {
        printf("  %-12s fstat %s\n", label, strerrorname_np(errno));
        return;
    }
    int fl = fcntl(fd, F_GETFL), fd_fl = fcntl(fd, F_GETFD);
    printf("  %-12s mode=%o nlink=%lu size=%ld uid=%u gid=%u blksize=%ld fl=%o fd=%d\n",
           label, (unsigned)s.st_mode, (unsigned long)s.st_nlink, (long)s.st_size, s.st_uid,
           s.st_gid, (long)s.st_blksize, fl & (O_ACCMODE | O_APPEND | O_NONBLOCK), fd_fl);
}

static void show_path(const char *label, const char *path) {
    struct stat s;
    if (lstat(path, &s) != 0)
        printf("  %-12s lstat %s\n", label, strerrorname_np(errno));
    else
        show(label, &s);
}

/* A shown name: a long one by its first characters and length, bytes
 * other than printable ASCII as \xNN. */
static const char *shown_name(const char *name) {
    static char buf[256];
    size_t n = strlen(name), o = 0;
    if (n > 40) {
        snprintf(buf, sizeof buf, "%.8s...(%zu bytes)", name, n);
        return buf;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch > ' ' && ch < 0x7f && ch != '\\')
            buf[o++] = (char)ch;
        else
            o += (size_t)sprintf(buf + o, "\\x%02x", ch);
    }
    buf[o] = 0;
    return buf;
}

/* ---- creating ---- */

/* open(at(name)) with O_CREAT: prints the result; the descriptor or -1. */
static int create(const char *name, int flags, mode_t mode) {
    int lowest = dup(0);            /* the number a new descriptor gets */
    close(lowest);
    errno = 0;
    int fd = open(at(name), flags, mode);
    printf("  create %-22s %s%s\n", shown_name(name), ename(fd, errno),
           fd >= 0 && fd != lowest ? " NOT-THE-LOWEST-DESCRIPTOR" : "");
    if (fd >= 0)
        note_fd(fd);
    return fd;
}

/* create and close n files prefix0..prefix(n-1) */
static void create_n(const char *prefix, int n, int flags, mode_t mode, int show_each) {
    char name[128];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%s%d", prefix, i);
        int fd = create(name, flags, mode);
        if (fd >= 0) {
            if (show_each)
                show_fd(name, fd);
            close(fd);
        }
    }
}

/* the result of a call that made a descriptor (closed) or none */
static void said(const char *label, int fd) {
    printf("  %s %s\n", label, ename(fd, errno));
    if (fd >= 0)
        close(fd);
}

/* ---- the steps ---- */

static int dirfd_of_dir;

static void step1(void) {
    char name[32];
    struct stat s, ds;
    printf("== 1. 40 files by openat(dirfd, \"sub/fNN\")\n");
    if (mkdir(at("sub"), 0755) != 0) { printf("mkdir sub: %s\n", strerrorname_np(errno)); exit(2); }
    for (int i = 0; i < 40; i++) {
        char buf[64];
        struct timespec before, after;
        snprintf(name, sizeof name, "sub/f%02d", i);
        clock_gettime(CLOCK_REALTIME_COARSE, &before);
        int fd = openat(dirfd_of_dir, name, CREATE_FLAGS, 0600);
        clock_gettime(CLOCK_REALTIME, &after);
        if (fd < 0) {
            printf("  %s: %s\n", name, strerrorname_np(errno));
            continue;
        }
        note_fd(fd);
        struct stat ps;
        if (fstat(fd, &s) == 0 && stat(at(name), &ps) == 0 && stat(at("sub"), &ds) == 0)
            printf("  %s same inode by path: %s, same device as sub: %s\n", name,
                   yes(s.st_ino == ps.st_ino && s.st_dev == ps.st_dev),
                   yes(s.st_dev == ds.st_dev));
        /* the new file's times, and the directory's since */
        int new_times = fstat(fd, &s) == 0 && stat(at("sub"), &ds) == 0;
        printf("  %s times equal: %s, ctime now-ish: %s, dir mtime >= file ctime: %s,"
               " dir ctime == dir mtime: %s\n", name,
               yes(new_times && ts_cmp(s.st_atim, s.st_mtim) == 0
                   && ts_cmp(s.st_mtim, s.st_ctim) == 0),
               yes(new_times && ts_cmp(s.st_ctim, before) >= 0 && ts_cmp(s.st_ctim, after) <= 0),
               yes(new_times && ts_cmp(ds.st_mtim, s.st_ctim) >= 0),
               yes(new_times && ts_cmp(ds.st_ctim, ds.st_mtim) == 0));
        memset(buf, 'a' + i % 26, sizeof buf);
        if (write(fd, buf, (size_t)i) != i)
            printf("  %s: short write\n", name);
        show_fd(name, fd);
        struct timespec t[2] = {{0, UTIME_OMIT}, {1500000000 + i, i * 1000}};
        if (futimens(fd, t) != 0)
            printf("  %s futimens: %s\n", name, strerrorname_np(errno));
        if (fchmod(fd, 0644) != 0)
            printf("  %s fchmod: %s\n", name, strerrorname_np(errno));
        close(fd);
    }
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "sub/f%02d", i);
        if (stat(at(name), &s) != 0) {
            printf("  stat %s: %s\n", name, strerrorname_np(errno));
            continue;
        }
        printf("  stat %s mode=%o size=%ld mtime=%ld.%09ld", name, (unsigned)s.st_mode,
               (long)s.st_size, (long)s.st_mtim.tv_sec, s.st_mtim.tv_nsec);
        /* what was written through the descriptor, read by path */
        char got[64], want[64];
        int fd = open(at(name), O_RDONLY);
        long r = fd >= 0 ? read(fd, got, sizeof got) : -1;
        memset(want, 'a' + i % 26, sizeof want);
        printf(" content %s\n", r == i && memcmp(got, want, (size_t)i) == 0 ? "ok" : "WRONG");
        if (fd >= 0)
            close(fd);
    }
    show_path("sub", at("sub"));
}

static void step2(void) {
    char name[32];
    printf("== 2. the same names again\n");
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "sub/f%02d", i);
        int fd = openat(dirfd_of_dir, name, CREATE_FLAGS, 0600);
        printf("  %s O_EXCL %s", name, ename(fd, errno));
        if (i % 5 == 4)
            printf("\n");
        if (fd >= 0)
            close(fd);
    }
    for (int i = 1; i < 40; i += 3) {       /* (not f00: it is empty) */
        struct stat s;
        snprintf(name, sizeof name, "sub/f%02d", i);
        int fd = openat(dirfd_of_dir, name, O_CREAT | O_TRUNC | O_WRONLY, 0600);
        printf("  %s O_TRUNC %s", name, ename(fd, errno));
        if (fd >= 0 && fstat(fd, &s) == 0)
            printf(" mode=%o size=%ld mtime moved: %s", (unsigned)s.st_mode, (long)s.st_size,
                   yes(s.st_mtim.tv_sec != 1500000000 + i));
        printf("\n");
        if (fd >= 0)
            close(fd);
    }
}

static void step3(void) {
    printf("== 3. the umask\n");
    umask(027);
    create_n("sub/u", 5, O_CREAT | O_EXCL | O_RDWR, 0666, 1);
    umask(0);
    create_n("sub/z", 5, O_CREAT | O_EXCL | O_RDWR, 0777, 1);
    umask(022);
    create_n("sub/w", 3, O_CREAT | O_EXCL | O_RDWR, 0666, 1);
}

static void step4(void) {
    printf("== 4. set-id modes\n");
    create_n("sub/plain", 2, O_CREAT | O_EXCL | O_WRONLY, 0755, 1);
    create_n("sub/suid", 2, O_CREAT | O_EXCL | O_WRONLY, 04755, 1);
    create_n("sub/sgid", 2, O_CREAT | O_EXCL | O_WRONLY, 02755, 1);
    create_n("sub/sticky", 2, O_CREAT | O_EXCL | O_WRONLY, 01755, 1);
    create_n("sub/after", 2, O_CREAT | O_EXCL | O_WRONLY, 0755, 1);
}

static void step5(void) {
    char name[300];
    int fd;
    printf("== 5. names\n");
    create_n("sub/n", 2, CREATE_FLAGS, 0644, 0);
    memcpy(name, "sub/", 4);
    memset(name + 4, 'L', 255);
    name[4 + 255] = 0;
    fd = create(name, CREATE_FLAGS, 0644);
    if (fd >= 0)
        close(fd);
    memset(name + 4, 'M', 256);
    name[4 + 256] = 0;
    fd = create(name, CREATE_FLAGS, 0644);
    if (fd >= 0)
        close(fd);
    create_n("sub/n2-", 2, CREATE_FLAGS, 0644, 0);
    fd = create("sub/x/", O_CREAT | O_WRONLY, 0644);
    if (fd >= 0)
        close(fd);
    printf("  sub/x exists: %s\n", yes(access(at("sub/x"), F_OK) == 0));
    create_n("sub/n3-", 2, CREATE_FLAGS, 0644, 0);
    if ((fd = create("sub/.", O_CREAT | O_EXCL | O_WRONLY, 0644)) >= 0)
        close(fd);
    if ((fd = create("sub/..", O_CREAT | O_EXCL | O_WRONLY, 0644)) >= 0)
        close(fd);
    if ((fd = create("sub/.", O_CREAT | O_WRONLY, 0644)) >= 0)
        close(fd);
    if ((fd = create("sub/..", O_CREAT | O_RDONLY, 0644)) >= 0)
        close(fd);
    mkdir(at("sub/dd"), 0755);
    create_n("sub/n4-", 2, CREATE_FLAGS, 0644, 0);
    if ((fd = create("sub/dd", O_CREAT | O_WRONLY, 0644)) >= 0)
        close(fd);
    if ((fd = create("sub/dd", O_CREAT | O_RDONLY, 0644)) >= 0)
        close(fd);
    rmdir(at("sub/dd"));

    /* dangling symlinks */
    if (symlink("target-new", at("sub/dangle")) != 0 || symlink("target-ex", at("sub/dangle2")) != 0
            || symlink("target-nf", at("sub/dangle3")) != 0)
        printf("  symlink: %s\n", strerrorname_np(errno));
    create_n("sub/n5-", 2, CREATE_FLAGS, 0644, 0);
    if ((fd = create("sub/dangle2", O_CREAT | O_EXCL | O_WRONLY, 0644)) >= 0)
        close(fd);
    printf("  sub/target-ex exists: %s\n", yes(access(at("sub/target-ex"), F_OK) == 0));
    if ((fd = create("sub/dangle3", O_CREAT | O_NOFOLLOW | O_WRONLY, 0644)) >= 0)
        close(fd);
    printf("  sub/target-nf exists: %s\n", yes(access(at("sub/target-nf"), F_OK) == 0));
    if ((fd = create("sub/dangle", O_CREAT | O_WRONLY, 0640)) >= 0) {
        show_fd("via dangle", fd);
        close(fd);
    }
    printf("  sub/target-new exists: %s\n", yes(access(at("sub/target-new"), F_OK) == 0));
    show_path("target-new", at("sub/target-new"));
    show_path("dangle", at("sub/dangle"));
    if ((fd = create("sub/dangle", O_CREAT | O_EXCL | O_WRONLY, 0644)) >= 0)
        close(fd);

    /* other spellings of the same directory */
    if (symlink(".", at("sub/self")) != 0)
        printf("  symlink self: %s\n", strerrorname_np(errno));
    create_n("sub/self/via", 3, CREATE_FLAGS, 0644, 0);
    create_n("sub//dbl", 3, CREATE_FLAGS, 0644, 0);
    create_n("sub/./dot", 3, CREATE_FLAGS, 0644, 0);
    /* names the directory got by another spelling meanwhile */
    const char *spelled[] = {"sub/dot3", "sub/./dot3", "sub/./dot4", "sub/dot4", "sub/self/dot4"};
    for (size_t i = 0; i < sizeof spelled / sizeof *spelled; i++)
        if ((fd = create(spelled[i], CREATE_FLAGS, 0644)) >= 0)
            close(fd);
    create_n("sub/self/via", 3, CREATE_FLAGS, 0644, 0);
    create_n("sub/dbl", 3, CREATE_FLAGS, 0644, 0);
    show_path("sub/via2", at("sub/via2"));
    show_path("sub/dot0", at("sub/dot0"));

    /* names that are not UTF-8 text, and other bytes */
    const char *odd[] = {"sub/\xc3\xa9t\xc3\xa9", "sub/\xff\xfe-bin", "sub/tab\there",
                         "sub/nl\nline", "sub/sp ace", "sub/\xe2\x82\xac"};
    for (size_t i = 0; i < sizeof odd / sizeof *odd; i++)
        if ((fd = create(odd[i], CREATE_FLAGS, 0644)) >= 0) {
            if (write(fd, odd[i], strlen(odd[i])) < 0)
                printf("  write: %s\n", strerrorname_np(errno));
            close(fd);
        }
    for (size_t i = 0; i < sizeof odd / sizeof *odd; i++)
        show_path(shown_name(odd[i]), at(odd[i]));

    /* a descriptor that is not a directory's, none, an empty name */
    create_n("sub/e", 2, CREATE_FLAGS, 0644, 0);
    int file = open(at("sub/e0"), O_RDONLY);
    said("openat(file, \"notdir\")", openat(file, "notdir", CREATE_FLAGS, 0644));
    said("openat(file, \"\")", openat(file, "", O_CREAT | O_WRONLY, 0644));
    close(file);
    said("openat(900, \"nofd\")", openat(900, "nofd", CREATE_FLAGS, 0644));
    said("openat(-5, \"nofd\")", openat(-5, "nofd", CREATE_FLAGS, 0644));
    said("open(\"\")", open("", O_CREAT | O_WRONLY, 0644));
    said("openat(dirfd, \"sub/\")", openat(dirfd_of_dir, "sub/", O_CREAT | O_WRONLY, 0644));
    said("openat(dirfd, \"nosuchdir/x\")",
         openat(dirfd_of_dir, "nosuchdir/x", O_CREAT | O_WRONLY, 0644));
    said("openat(dirfd, \"sub/e0/x\")",
         openat(dirfd_of_dir, "sub/e0/x", O_CREAT | O_WRONLY, 0644));
    said("open(bad address)", open((const char *)8, O_CREAT | O_WRONLY, 0644));
    create_n("sub/e1-", 2, CREATE_FLAGS, 0644, 0);
}

static void step6(void) {
    char name[600];
    printf("== 6. absolute and relative paths, creat\n");
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "%s/sub/a%d", dir, i);
        int fd = open(name, CREATE_FLAGS, 0644);
        printf("  absolute a%d %s\n", i, ename(fd, errno));
        if (fd >= 0) {
            note_fd(fd);
            close(fd);
        }
    }
    if (chdir(at("sub")) != 0) { printf("chdir: %s\n", strerrorname_np(errno)); exit(2); }
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "r%d", i);
        int fd = open(name, CREATE_FLAGS, 0644);
        printf("  relative %s %s\n", name, ename(fd, errno));
        if (fd >= 0) {
            note_fd(fd);
            close(fd);
        }
    }
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "c%d", i);
        int fd = creat(name, 0640);
        printf("  creat %s %s\n", name, ename(fd, errno));
        if (fd >= 0) {
            note_fd(fd);
            show_fd(name, fd);
            if (write(fd, "creat", 5) != 5)
                printf("  creat %s: short write\n", name);
            close(fd);
        }
    }
    /* creat of an existing file truncates it */
    int fd = creat("c1", 0600);
    printf("  creat c1 again %s\n", ename(fd, errno));
    if (fd >= 0) {
        show_fd("c1", fd);
        close(fd);
    }
    show_path("sub/a0", at("sub/a0"));
    show_path("sub/r0", at("sub/r0"));
}

static void step7(void) {
    char buf[64];
    printf("== 7. access modes\n");
    for (int i = 0; i < 3; i++) {
        snprintf(buf, sizeof buf, "sub/ro%d", i);
        int fd = create(buf, O_RDONLY | O_CREAT, 0644);
        if (fd < 0)
            continue;
        show_fd(buf, fd);
        long r = read(fd, buf, sizeof buf);
        printf("  read %ld %s\n", r, ename(r, errno));
        long w = write(fd, "x", 1);
        printf("  write %ld %s\n", w, ename(w, errno));
        close(fd);
    }
    for (int i = 0; i < 3; i++) {
        snprintf(buf, sizeof buf, "sub/ap%d", i);
        int fd = create(buf, O_RDWR | O_CREAT | O_APPEND, 0644);
        if (fd < 0)
            continue;
        show_fd(buf, fd);
        long w1 = write(fd, "abc", 3);
        long off = lseek(fd, 0, SEEK_SET);
        long w2 = write(fd, "defg", 4);
        long off2 = lseek(fd, 0, SEEK_CUR);
        lseek(fd, 0, SEEK_SET);
        memset(buf, 0, sizeof buf);
        long r = read(fd, buf, sizeof buf - 1);
        printf("  writes %ld %ld, lseek %ld, after %ld, read %ld \"%s\"\n", w1, w2, off, off2,
               r, buf);
        close(fd);
    }
    for (int i = 0; i < 3; i++) {
        snprintf(buf, sizeof buf, "sub/tr%d", i);
        int fd = create(buf, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600);
        if (fd < 0)
            continue;
        long w = pwrite(fd, "xyz", 3, 10);
        char got[16] = {0};
        long r = pread(fd, got, sizeof got, 0);
        printf("  pwrite %ld pread %ld tail \"%s\"\n", w, r, r >= 13 ? got + 10 : "");
        show_fd(buf, fd);
        close(fd);
    }
    /* the lowest free descriptor number, below others */
    int a = dup(0), b = dup(0), c = dup(0);
    close(b);
    create_n("sub/gap", 3, O_RDWR | O_CREAT | O_EXCL, 0644, 0);
    close(a);
    close(c);
    /* a descriptor a forked child inherits */
    for (int i = 0; i < 2; i++) {
        snprintf(buf, sizeof buf, "sub/fk%d", i);
        int fd = create(buf, O_RDWR | O_CREAT | O_EXCL, 0644);
        if (fd < 0)
            continue;
        if (write(fd, "parent", 6) != 6)
            printf("  short write\n");
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            struct stat s;
            int ok = write(fd, "+child", 6) == 6 && fstat(fd, &s) == 0 && s.st_size == 12;
            _exit(ok ? 0 : 1);
        }
        int status;
        waitpid(pid, &status, 0);
        char got[32] = {0};
        long r = pread(fd, got, sizeof got - 1, 0);
        printf("  child status %d, read %ld \"%s\", offset %ld\n",
               WIFEXITED(status) ? WEXITSTATUS(status) : -1, r, got,
               (long)lseek(fd, 0, SEEK_CUR));
        show_fd(buf, fd);
        close(fd);
    }
    /* flags Python handles */
    create_n("sub/sync", 2, O_WRONLY | O_CREAT | O_EXCL | O_SYNC, 0644, 0);
    create_n("sub/dsync", 2, O_WRONLY | O_CREAT | O_EXCL | O_DSYNC, 0644, 0);
    create_n("sub/noatime", 2, O_WRONLY | O_CREAT | O_EXCL | O_NOATIME, 0644, 0);
    create_n("sub/plain-again", 2, O_WRONLY | O_CREAT | O_EXCL, 0644, 0);
    for (int i = 0; i < 2; i++) {
        snprintf(buf, sizeof buf, "sub/sync%d", i);
        int fd = open(at(buf), O_WRONLY | O_SYNC);
        printf("  %s O_SYNC reopened: %s\n", buf,
               yes(fd >= 0 && (fcntl(fd, F_GETFL) & O_SYNC) == O_SYNC));
        close(fd);
    }
}

/* uid 1000: creates where it may not and where it may */
static void child8(void) {
    int fd;
    create_n("locked/c", 2, CREATE_FLAGS, 0644, 0);     /* as root: the second may be C's */
    /* the owner a new file gets is the file-system ids' */
    create_n("open/r", 2, CREATE_FLAGS, 0644, 0);
    setfsuid(1000);
    create_n("open/fs", 2, CREATE_FLAGS, 0644, 0);
    setfsgid(1000);
    create_n("open/fg", 2, CREATE_FLAGS, 0644, 0);
    setfsuid(0);
    setfsgid(0);
    create_n("open/r", 4, CREATE_FLAGS, 0644, 0);       /* r0, r1 exist */
    if (setgroups(0, NULL) != 0 || setresgid(1000, 1000, 1000) != 0
            || setresuid(1000, 1000, 1000) != 0) {
        printf("  child: cannot become uid 1000\n");
        fflush(stdout);
        _exit(1);
    }
    create_n("locked/d", 3, CREATE_FLAGS, 0644, 0);
    create_n("open/k", 5, CREATE_FLAGS, 0644, 0);
    if ((fd = create("open/k4", O_CREAT | O_WRONLY, 0644)) >= 0) {   /* its own: opens */
        show_fd("open/k4", fd);
        close(fd);
    }
    if ((fd = create("open/L0", O_CREAT | O_WRONLY, 0644)) >= 0)     /* root's: EACCES */
        close(fd);
    create_n("opensg/s", 3, CREATE_FLAGS, 0644, 1);
    create_n("opensg/sg", 2, CREATE_FLAGS, 02755, 1);
    create_n("opensg/t", 2, CREATE_FLAGS, 0600, 1);
    /* its own directory, made read-only through a descriptor and back */
    int own = open(at("own"), O_RDONLY | O_DIRECTORY);
    create_n("own/o", 2, CREATE_FLAGS, 0644, 0);
    printf("  fchmod(own, 0555) %s\n", ename(fchmod(own, 0555), errno));
    create_n("own/p", 2, CREATE_FLAGS, 0644, 0);
    printf("  fchmod(own, 0755) %s\n", ename(fchmod(own, 0755), errno));
    create_n("own/q", 2, CREATE_FLAGS, 0644, 0);
    close(own);
    fflush(stdout);
    _exit(7);
}

static void step8(void) {
    char name[32];
    printf("== 8. another owner\n");
    if (mkdir(at("locked"), 0755) != 0 || mkdir(at("open"), 0777) != 0
            || chmod(at("open"), 0777) != 0 || mkdir(at("opensg"), 0777) != 0
            || chown(at("opensg"), 0, 1234) != 0 || chmod(at("opensg"), 02777) != 0
            || mkdir(at("own"), 0755) != 0 || chown(at("own"), 1000, 1000) != 0) {
        printf("setup: %s\n", strerrorname_np(errno));
        exit(2);
    }
    create_n("locked/L", 2, CREATE_FLAGS, 0644, 0);
    int fd = create("open/L0", CREATE_FLAGS, 0644);
    if (fd >= 0)
        close(fd);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0)
        child8();
    int status;
    waitpid(pid, &status, 0);
    printf("  child status %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    const char *made[] = {"locked/c0", "locked/c1", "open/k0", "open/k1", "open/k2", "open/k3",
                          "open/k4", "opensg/s0", "opensg/s1", "opensg/s2", "opensg/sg0",
                          "opensg/sg1", "opensg/t0", "opensg/t1", "open/r0", "open/r1",
                          "open/r2", "open/r3", "open/fs0", "open/fs1", "open/fg0", "open/fg1",
                          "own/o0", "own/o1", "own/q0", "own/q1"};
    for (size_t i = 0; i < sizeof made / sizeof *made; i++) {
        note_path(at(made[i]));
        show_path(made[i], at(made[i]));
    }
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "locked/d%d", i);
        printf("  %s exists: %s\n", name, yes(access(at(name), F_OK) == 0));
    }
    show_path("locked", at("locked"));
    show_path("open", at("open"));
    show_path("opensg", at("opensg"));
    show_path("own", at("own"));
    printf("  own/p0 exists: %s\n", yes(access(at("own/p0"), F_OK) == 0));
}

static void step9(void) {
    printf("== 9. a set-group-id directory\n");
    if (mkdir(at("sg"), 0755) != 0 || chown(at("sg"), 0, 1234) != 0
            || chmod(at("sg"), 02775) != 0) {
        printf("setup: %s\n", strerrorname_np(errno));
        exit(2);
    }
    show_path("sg", at("sg"));
    create_n("sg/f", 3, CREATE_FLAGS, 0644, 1);
    create_n("sg/x", 2, CREATE_FLAGS, 02750, 1);
    create_n("sg/g", 2, CREATE_FLAGS, 0664, 1);
}

static void step10(void) {
    char name[32];
    int fd;
    printf("== 10. unlink, create again, rename the directory\n");
    for (int i = 5; i < 8; i++) {
        snprintf(name, sizeof name, "sub/f%02d", i);
        printf("  unlink %s %s\n", name, ename(unlink(at(name)), errno));
    }
    printf("  link sub/f08 sub/hl8 %s\n", ename(link(at("sub/f08"), at("sub/hl8")), errno));
    show_path("sub/f08", at("sub/f08"));
    printf("  rename sub/f09 sub/f09r %s\n", ename(rename(at("sub/f09"), at("sub/f09r")), errno));
    create_n("sub/g", 2, CREATE_FLAGS, 0644, 0);
    if ((fd = create("sub/f09", CREATE_FLAGS, 0600)) >= 0)
        close(fd);
    for (int i = 5; i < 8; i++) {
        snprintf(name, sizeof name, "sub/f%02d", i);
        if ((fd = create(name, CREATE_FLAGS, 0600)) >= 0) {
            show_fd(name, fd);
            close(fd);
        }
    }
    for (int i = 0; i < 2; i++) {
        snprintf(name, sizeof name, "sub/p%d", i);
        fd = openat(dirfd_of_dir, name, CREATE_FLAGS, 0644);
        printf("  openat %s %s\n", name, ename(fd, errno));
        if (fd >= 0) {
            note_fd(fd);
            close(fd);
        }
    }
    printf("  rename sub sub2 %s\n", ename(rename(at("sub"), at("sub2")), errno));
    for (int i = 0; i < 2; i++) {
        snprintf(name, sizeof name, "sub/new%d", i);
        fd = openat(dirfd_of_dir, name, CREATE_FLAGS, 0644);
        printf("  openat %s %s\n", name, ename(fd, errno));
        if (fd >= 0)
            close(fd);
    }
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "sub2/new%d", i);
        fd = openat(dirfd_of_dir, name, CREATE_FLAGS, 0644);
        printf("  openat %s %s\n", name, ename(fd, errno));
        if (fd >= 0) {
            note_fd(fd);
            close(fd);
        }
    }
    /* the working directory moved along */
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "rr%d", i);
        fd = open(name, CREATE_FLAGS, 0644);
        printf("  relative %s %s\n", name, ename(fd, errno));
        if (fd >= 0) {
            note_fd(fd);
            close(fd);
        }
    }
    printf("  sub2/rr2 exists: %s, sub exists: %s\n", yes(access(at("sub2/rr2"), F_OK) == 0),
           yes(access(at("sub"), F_OK) == 0));
    /* a new sub, and the old spelling leads there */
    printf("  mkdir sub %s\n", ename(mkdir(at("sub"), 0755), errno));
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "sub/q%d", i);
        fd = openat(dirfd_of_dir, name, CREATE_FLAGS, 0644);
        printf("  openat %s %s\n", name, ename(fd, errno));
        if (fd >= 0) {
            note_fd(fd);
            close(fd);
        }
    }
    printf("  sub2/q0 exists: %s\n", yes(access(at("sub2/q0"), F_OK) == 0));
}

static void step11(void) {
    printf("== 11. out of descriptors\n");
    if (mkdir(at("emfile"), 0755) != 0) { printf("mkdir: %s\n", strerrorname_np(errno)); exit(2); }
    fflush(stdout);
    int pipefd[2];
    if (pipe(pipefd) != 0) exit(2);
    pid_t pid = fork();
    if (pid == 0) {
        char name[32];
        int n = 0, e = 0;
        close(pipefd[0]);
        /* only 0, 1, 2 and the pipe's end (above the limit) open: the same
         * count natively and in the guest */
        if (dup2(pipefd[1], 100) != 100)
            _exit(3);
        for (int fd = 3; fd < 1024; fd++)
            if (fd != 100)
                close(fd);
        pipefd[1] = 100;
        struct rlimit rl = {16, 16};
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            _exit(3);
        for (; n < 100; n++) {
            snprintf(name, sizeof name, "emfile/e%d", n);
            if (open(at(name), CREATE_FLAGS, 0644) < 0) {
                e = errno;
                break;
            }
        }
        printf("  created %d, then %s\n", n, e ? strerrorname_np(e) : "no error");
        fflush(stdout);
        if (write(pipefd[1], &n, sizeof n) != sizeof n)
            _exit(4);
        _exit(0);
    }
    close(pipefd[1]);
    int n = 0, status;
    if (read(pipefd[0], &n, sizeof n) != sizeof n)
        n = 0;
    close(pipefd[0]);
    waitpid(pid, &status, 0);
    printf("  child status %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "emfile/e%d", i);
        note_path(at(name));
    }
    char refused[32];   /* Linux takes the descriptor number before it creates */
    snprintf(refused, sizeof refused, "emfile/e%d", n);
    printf("  %s, refused: %s\n", refused,
           access(at(refused), F_OK) == 0 ? "exists" : strerrorname_np(errno));
}

/* many in a row, with nothing but open and close between them */
static void step11b(void) {
    char name[300];
    int made = 0, listed = 0, regular = 0, fds_ok = 1;
    printf("== 11b. 300 in a row\n");
    if (mkdir(at("many"), 0755) != 0) { printf("mkdir: %s\n", strerrorname_np(errno)); exit(2); }
    int lowest = dup(0);
    close(lowest);
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "many/m%03d", i);
        int fd = open(at(name), CREATE_FLAGS, 0640);
        if (fd < 0) {
            printf("  %s: %s\n", name, strerrorname_np(errno));
            continue;
        }
        fds_ok &= fd == lowest;
        made++;
        note_fd(fd);
        close(fd);
    }
    DIR *d = opendir(at("many"));
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        struct stat s;
        if (e->d_name[0] == '.')
            continue;
        listed++;
        snprintf(name, sizeof name, "many/%s", e->d_name);
        regular += lstat(at(name), &s) == 0 && s.st_mode == (S_IFREG | 0640) && s.st_nlink == 1
                   && s.st_size == 0 && s.st_uid == 0 && s.st_gid == 0;
    }
    if (d)
        closedir(d);
    printf("  made %d, listed %d, regular 0640 root-owned empty %d, lowest descriptors %s\n",
           made, listed, regular, yes(fds_ok));
    show_path("many", at("many"));
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void step12(void) {
    char *names[512];
    int n = 0;
    struct stat s;
    printf("== 12. the listing\n");
    DIR *d = opendir(at("sub2"));
    if (!d) { printf("opendir: %s\n", strerrorname_np(errno)); return; }
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 512)
        names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    printf("  %d entries\n", n);
    for (int i = 0; i < n; i++) {
        char path[300];
        snprintf(path, sizeof path, "sub2/%s", names[i]);
        if (lstat(at(path), &s) != 0) {
            printf("  %s: %s\n", shown_name(names[i]), strerrorname_np(errno));
            continue;
        }
        printf("  %-24s mode=%o nlink=%lu size=%ld uid=%u gid=%u\n", shown_name(names[i]),
               (unsigned)s.st_mode, (unsigned long)s.st_nlink, (long)s.st_size, s.st_uid,
               s.st_gid);
        free(names[i]);
    }
    qsort(inos, (size_t)n_inos, sizeof *inos, cmp_ino);
    int unique = 1;
    for (int i = 1; i < n_inos; i++)
        if (inos[i] == inos[i - 1])
            unique = 0;
    printf("  files created: %d, inos unique: %s\n", n_inos, yes(unique));
    const char *dirs[] = {".", "sub", "sub2", "locked", "open", "opensg", "own", "sg", "many"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        if (stat(at(dirs[i]), &s) != 0) {
            printf("  dir %s: %s\n", dirs[i], strerrorname_np(errno));
            continue;
        }
        printf("  dir %-6s mode=%o nlink=%lu size=%ld\n", dirs[i], (unsigned)s.st_mode,
               (unsigned long)s.st_nlink, (long)s.st_size);
    }
}

/* DIR is a tmpfs with nr_inodes=30 (its root takes one) */
static int nr_inodes(void) {
    char name[32];
    int n = 0, e = 0, fd;
    for (; n < 100; n++) {
        snprintf(name, sizeof name, "i%d", n);
        fd = open(at(name), CREATE_FLAGS, 0644);
        if (fd < 0) {
            e = errno;
            break;
        }
        close(fd);
    }
    printf("created %d, then %s\n", n, e ? strerrorname_np(e) : "no error");
    printf("i%d exists: %s\n", n, yes(access(at(name), F_OK) == 0));
    /* one freed, one made again: then full again */
    printf("unlink i3 %s\n", ename(unlink(at("i3")), errno));
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "j%d", i);
        fd = open(at(name), CREATE_FLAGS, 0644);
        printf("create %s %s\n", name, ename(fd, errno));
        if (fd >= 0)
            close(fd);
    }
    /* two freed, in a row */
    printf("unlink i4 %s, i5 %s\n", ename(unlink(at("i4")), errno),
           ename(unlink(at("i5")), errno));
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "k%d", i);
        fd = open(at(name), CREATE_FLAGS, 0644);
        printf("create %s %s\n", name, ename(fd, errno));
        if (fd >= 0)
            close(fd);
    }
    /* a directory takes one too */
    printf("unlink i6 %s\n", ename(unlink(at("i6")), errno));
    printf("mkdir d %s\n", ename(mkdir(at("d"), 0755), errno));
    fd = open(at("k9"), CREATE_FLAGS, 0644);
    printf("create k9 %s\n", ename(fd, errno));

    /* a tmpfs mounted on a directory made in between: its own inodes */
    for (int i = 10; i < 20; i++) {
        snprintf(name, sizeof name, "i%d", i);
        if (unlink(at(name)) != 0)
            printf("unlink %s %s\n", name, strerrorname_np(errno));
    }
    printf("mkdir m %s\n", ename(mkdir(at("m"), 0755), errno));
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "m/a%d", i);
        fd = open(at(name), CREATE_FLAGS, 0644);
        printf("create %s %s\n", name, ename(fd, errno));
        if (fd >= 0)
            close(fd);
    }
    printf("mount m %s\n", ename(mount("none", at("m"), "tmpfs", 0, "nr_inodes=5"), errno));
    for (int i = 0; i < 6; i++) {
        snprintf(name, sizeof name, "m/b%d", i);
        fd = open(at(name), CREATE_FLAGS, 0644);
        printf("create %s %s\n", name, ename(fd, errno));
        if (fd >= 0)
            close(fd);
    }
    printf("unlink m/b0 %s\n", ename(unlink(at("m/b0")), errno));
    fd = open(at("m/a0"), CREATE_FLAGS, 0644);
    printf("create m/a0 %s\n", ename(fd, errno));
    if (fd >= 0)
        close(fd);
    for (int i = 0; i < 6; i++) {
        snprintf(name, sizeof name, "o%d", i);
        fd = open(at(name), CREATE_FLAGS, 0644);
        printf("create %s %s\n", name, ename(fd, errno));
        if (fd >= 0)
            close(fd);
    }
    printf("umount m %s\n", ename(umount2(at("m"), 0), errno));
    printf("m/a1 exists: %s, m/b1 exists: %s\n", yes(access(at("m/a1"), F_OK) == 0),
           yes(access(at("m/b1"), F_OK) == 0));
    fd = open(at("m/c0"), CREATE_FLAGS, 0644);
    printf("create m/c0 %s\n", ename(fd, errno));
    struct statvfs v;
    if (statvfs(dir, &v) == 0)
        printf("files %lu free %lu\n", (unsigned long)v.f_files, (unsigned long)v.f_ffree);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--nr-inodes") == 0) {
        snprintf(dir, sizeof dir, "%s", argv[2]);
        umask(022);
        return nr_inodes();
    }
    if (argc != 2) {
        fprintf(stderr, "usage: createseq DIR | createseq --nr-inodes DIR\n");
        return 2;
    }
    snprintf(dir, sizeof dir, "%s", argv[1]);
    umask(022);
    chmod(dir, 0755);
    dirfd_of_dir = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd_of_dir < 0) {
        printf("open %s: %s\n", dir, strerrorname_np(errno));
        return 2;
    }
    step1();
    step2();
    step3();
    step4();
    step5();
    step6();
    step7();
    step8();
    step9();
    step10();
    step11();
    step11b();
    step12();
    return 0;
}
