/* A scripted escape prober: reads one operation per line on stdin and prints
 * "<n> <op> -> <result>" for each, where result is OK, OK:<content> or an errno
 * name.  Paths are never printed (they differ between the native and the guest
 * runs); the line number says which operation it was.
 *
 *   read P | append P | creat P | write P | trunc P | unlink P | rmdir P | mkdir P
 *   chmod P [MODE] | chown P [UID] | link OLD NEW | symlink TARGET P | rename OLD NEW
 *   readlink P | chdir P | chroot P
 *                        (append/creat/write write PWNED: O_APPEND, O_CREAT|O_EXCL,
 *                        O_CREAT|O_TRUNC; chmod defaults to 0777, chown to 4242)
 *   opath P              O_PATH open, then reopen /proc/self/fd/N read-only,
 *                        write-only (appends PWNED) and read-write; then write(2)
 *                        and fchmod on the O_PATH descriptor itself
 *   opathl P             the same with O_PATH|O_NOFOLLOW (a symlink itself)
 *   opathat DIR NAME     openat(O_PATH of DIR, NAME, O_RDONLY), prints content
 *   openat2 DIR P FLAGS  openat2(DIR opened O_RDONLY, P, O_RDONLY, resolve=FLAGS), FLAGS
 *                        a '|' list of beneath in_root no_symlinks no_magiclinks
 *                        no_xdev, or a number
 *   jailbreak JAIL       the classic chroot escape: chroot(JAIL) keeping a
 *                        descriptor of the old cwd, fchdir to it, chdir("..")
 *                        64 times, chroot(".")
 *   setuid UID           drop to UID/GID (no groups) for the following operations,
 *                        staying dumpable so that /proc/self/fd stays ours
 *   race DIR TARGET N    see race() below
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "probe.h"

/* The content of fd from offset 0, newlines shown as '|'. */
static const char *content(int fd)
{
    static char buf[256];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n < 0)
        return strerrorname_np(errno);
    buf[n] = 0;
    for (char *p = buf; *p; p++)
        if (*p == '\n')
            *p = '|';
    return buf;
}

static void op_read(const char *op, const char *p)
{
    int fd = open(p, O_RDONLY);
    if (fd < 0)
        return result(op, 0, NULL);
    result(op, 1, content(fd));
    close(fd);
}

static int append_to(int fd)
{
    return write(fd, "PWNED\n", 6) == 6;
}

static void op_open_write(const char *op, const char *p, int flags)
{
    int fd = open(p, flags, 0644);
    if (fd < 0)
        return result(op, 0, NULL);
    result(op, append_to(fd), NULL);
    close(fd);
}

static void op_opath(const char *op, const char *p, int extra)
{
    static const struct { const char *name; int flags; } modes[] = {
        {"reopen-ro", O_RDONLY}, {"reopen-wo", O_WRONLY | O_APPEND}, {"reopen-rw", O_RDWR | O_APPEND},
    };
    int fd = open(p, O_PATH | extra);
    if (fd < 0)
        return result(op, 0, NULL);
    char magic[64], what[64];
    snprintf(magic, sizeof magic, "/proc/self/fd/%d", fd);
    for (unsigned i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        snprintf(what, sizeof what, "%s/%s", op, modes[i].name);
        int fd2 = open(magic, modes[i].flags);
        if (fd2 < 0) {
            result(what, 0, NULL);
            continue;
        }
        if (modes[i].flags == O_RDONLY)
            result(what, 1, content(fd2));
        else
            result(what, append_to(fd2), NULL);
        close(fd2);
    }
    snprintf(what, sizeof what, "%s/write-opath", op);
    result(what, write(fd, "PWNED\n", 6) == 6, NULL);
    snprintf(what, sizeof what, "%s/fchmod-opath", op);
    result(what, fchmod(fd, 0777) == 0, NULL);
    close(fd);
}

static unsigned long long resolve_flags(const char *s)
{
    static const struct { const char *name; unsigned long long bit; } names[] = {
        {"beneath", RESOLVE_BENEATH}, {"in_root", RESOLVE_IN_ROOT},
        {"no_symlinks", RESOLVE_NO_SYMLINKS}, {"no_magiclinks", RESOLVE_NO_MAGICLINKS},
        {"no_xdev", RESOLVE_NO_XDEV},
    };
    unsigned long long r = 0;
    char copy[256];
    snprintf(copy, sizeof copy, "%s", s);
    for (char *tok = strtok(copy, "|"); tok; tok = strtok(NULL, "|")) {
        int found = 0;
        for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
            if (!strcmp(tok, names[i].name)) {
                r |= names[i].bit;
                found = 1;
            }
        if (!found)
            r |= strtoull(tok, NULL, 0);
    }
    return r;
}

static void op_openat2(const char *op, const char *dir, const char *p, const char *flags)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);    /* not O_PATH: tested on its own */
    if (dfd < 0)
        return result(op, 0, NULL);
    struct open_how how = {.flags = O_RDONLY, .resolve = resolve_flags(flags)};
    int fd = syscall(SYS_openat2, dfd, p, &how, sizeof how);
    if (fd < 0)
        result(op, 0, NULL);
    else {
        struct stat st;
        fstat(fd, &st);
        result(op, 1, S_ISDIR(st.st_mode) ? "<dir>" : content(fd));
        close(fd);
    }
    close(dfd);
}

static void op_opathat(const char *op, const char *dir, const char *name)
{
    int dfd = open(dir, O_PATH | O_DIRECTORY);
    if (dfd < 0)
        return result(op, 0, NULL);
    int fd = openat(dfd, name, O_RDONLY);
    if (fd < 0)
        result(op, 0, NULL);
    else {
        result(op, 1, content(fd));
        close(fd);
    }
    close(dfd);
}

static void op_jailbreak(const char *op, const char *jail)
{
    int old = open(".", O_RDONLY | O_DIRECTORY);
    if (old < 0 || chroot(jail) < 0 || fchdir(old) < 0)
        return result(op, 0, NULL);
    for (int i = 0; i < 64; i++)
        if (chdir("..") < 0)
            return result(op, 0, NULL);
    result(op, chroot(".") == 0, NULL);
    close(old);
}

/* The rename race.  DIR/real is a directory holding "secret" (INSIDE), DIR/link
 * a symlink to TARGET.  Thread A swaps them N times (real -> tmp, link -> real,
 * real -> link, tmp -> real) while thread B opens DIR/real/secret read-write
 * (appending PWNED when it gets it) and creates DIR/real/<new> (then unlinks
 * it): a path walk that checks DIR/real and then lets the host resolve the rest
 * reaches TARGET when A swaps in between. */
static const char *race_dir;
static volatile int race_done;
static int race_n;

static void *race_renamer(void *arg)
{
    char real[512], tmp[512], link[512];
    (void)arg;
    snprintf(real, sizeof real, "%s/real", race_dir);
    snprintf(tmp, sizeof tmp, "%s/tmp", race_dir);
    snprintf(link, sizeof link, "%s/link", race_dir);
    for (int i = 0; i < race_n; i++) {
        rename(real, tmp);
        rename(link, real);
        rename(real, link);
        rename(tmp, real);
    }
    race_done = 1;
    return NULL;
}

static void op_race(const char *op, const char *dir, const char *target, int n)
{
    char path[512], secret[512], created[512], link[512];
    snprintf(path, sizeof path, "%s/real", dir);
    snprintf(secret, sizeof secret, "%s/real/secret", dir);
    snprintf(created, sizeof created, "%s/real/created-by-race", dir);
    snprintf(link, sizeof link, "%s/link", dir);
    if (mkdir(dir, 0755) < 0 || mkdir(path, 0755) < 0 || symlink(target, link) < 0)
        return result(op, 0, NULL);
    int fd = open(secret, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0 || write(fd, "INSIDE\n", 7) != 7)
        return result(op, 0, NULL);
    close(fd);
    race_dir = dir;
    race_n = n;
    pthread_t t;
    if (pthread_create(&t, NULL, race_renamer, NULL) != 0)
        return result(op, 0, NULL);
    long inside = 0, target_hits = 0, enoent = 0, other = 0, creats = 0, opens = 0;
    int other_errno = 0;
    while (!race_done) {
        opens++;
        fd = open(secret, O_RDWR | O_APPEND);
        if (fd >= 0) {
            char buf[8] = {0};
            if (pread(fd, buf, 6, 0) == 6 && !memcmp(buf, "INSIDE", 6))
                inside++;
            else
                target_hits++;
            append_to(fd);
            close(fd);
        } else if (errno == ENOENT)
            enoent++;
        else {
            other++;
            other_errno = errno;
        }
        fd = open(created, O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (fd >= 0) {
            creats++;
            close(fd);
            unlink(created);
        }
    }
    pthread_join(t, NULL);
    char extra[256];
    snprintf(extra, sizeof extra, "opens=%ld inside=%ld target=%ld enoent=%ld other=%ld(%s) creats=%ld",
             opens, inside, target_hits, enoent, other,
             other_errno ? strerrorname_np(other_errno) : "-", creats);
    result(op, 1, extra);
}

int main(void)
{
    char line[4096];
    char *a[4] = {0};
    int n;
    while ((n = next_command(line, sizeof line, a, 4)) > 0) {
        const char *op = a[0];
        if (!strcmp(op, "read") && n == 2) op_read(op, a[1]);
        else if (!strcmp(op, "append") && n == 2) op_open_write(op, a[1], O_WRONLY | O_APPEND);
        else if (!strcmp(op, "creat") && n == 2) op_open_write(op, a[1], O_WRONLY | O_CREAT | O_EXCL);
        else if (!strcmp(op, "write") && n == 2) op_open_write(op, a[1], O_WRONLY | O_CREAT | O_TRUNC);
        else if (!strcmp(op, "trunc") && n == 2) result(op, truncate(a[1], 0) == 0, NULL);
        else if (!strcmp(op, "unlink") && n == 2) result(op, unlink(a[1]) == 0, NULL);
        else if (!strcmp(op, "rmdir") && n == 2) result(op, rmdir(a[1]) == 0, NULL);
        else if (!strcmp(op, "mkdir") && n == 2) result(op, mkdir(a[1], 0755) == 0, NULL);
        else if (!strcmp(op, "chmod") && n >= 2)
            result(op, chmod(a[1], n > 2 ? strtol(a[2], NULL, 8) : 0777) == 0, NULL);
        else if (!strcmp(op, "chown") && n >= 2) {
            int id = n > 2 ? atoi(a[2]) : 4242;
            result(op, chown(a[1], id, id) == 0, NULL);
        }
        else if (!strcmp(op, "link") && n == 3) result(op, link(a[1], a[2]) == 0, NULL);
        else if (!strcmp(op, "symlink") && n == 3) result(op, symlink(a[1], a[2]) == 0, NULL);
        else if (!strcmp(op, "rename") && n == 3) result(op, rename(a[1], a[2]) == 0, NULL);
        else if (!strcmp(op, "chdir") && n == 2) result(op, chdir(a[1]) == 0, NULL);
        else if (!strcmp(op, "chroot") && n == 2) result(op, chroot(a[1]) == 0 && chdir("/") == 0, NULL);
        else if (!strcmp(op, "readlink") && n == 2) {
            char buf[512];
            ssize_t r = readlink(a[1], buf, sizeof buf - 1);
            if (r >= 0)
                buf[r] = 0;
            result(op, r >= 0, r >= 0 ? buf : NULL);
        }
        else if (!strcmp(op, "opath") && n == 2) op_opath(op, a[1], 0);
        else if (!strcmp(op, "opathl") && n == 2) op_opath(op, a[1], O_NOFOLLOW);
        else if (!strcmp(op, "opathat") && n == 3) op_opathat(op, a[1], a[2]);
        else if (!strcmp(op, "openat2") && n == 4) op_openat2(op, a[1], a[2], a[3]);
        else if (!strcmp(op, "jailbreak") && n == 2) op_jailbreak(op, a[1]);
        else if (!strcmp(op, "setuid") && n == 2) {
            int id = atoi(a[1]);
            result(op, setgroups(0, NULL) == 0 && setgid(id) == 0 && setuid(id) == 0
                       && prctl(PR_SET_DUMPABLE, 1) == 0, NULL);
        }
        else if (!strcmp(op, "race") && n == 4) op_race(op, a[1], a[2], atoi(a[3]));
        else {
            printf("%d %s -> BAD-OP\n", lineno, op);
            return 2;
        }
    }
    return 0;
}
