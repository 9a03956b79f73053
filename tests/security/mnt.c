/* Mount-table probe for test_mount_escape.py: one operation per line on stdin,
 * "<n> <op> -> OK[:text] | ERRNO" per line out (paths are never printed).
 *
 *   mount SRC TARGET TYPE FLAGS [DATA]  SRC/TYPE/DATA "-" for NULL; FLAGS a '|' list
 *                                       of bind rec move rdonly remount, or 0
 *   umount P [detach]   pivot NEW OLD   chroot P   chdir P   mkdir P
 *   read P              the first line of P
 *   readlink P          ls P (names, sorted, ',' between)
 *   keep P              open P (a directory) and keep the descriptor
 *   fchdir              chdir to the kept descriptor
 *   openat P            read P relative to the kept descriptor
 *   climb N             chdir("..") N times
 *   raw NR A B          any syscall with two string arguments ("-" = NULL)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "probe.h"

#include "rawsys.h"

static int kept = -1;

static const char *arg(const char *s)
{
    return strcmp(s, "-") ? s : NULL;
}

static unsigned long flags_of(const char *s)
{
    static const struct { const char *name; unsigned long bit; } names[] = {
        {"bind", MS_BIND}, {"rec", MS_REC}, {"move", MS_MOVE}, {"rdonly", MS_RDONLY},
        {"remount", MS_REMOUNT},
    };
    unsigned long r = 0;
    char copy[128];
    snprintf(copy, sizeof copy, "%s", s);
    for (char *tok = strtok(copy, "|"); tok; tok = strtok(NULL, "|")) {
        int found = 0;
        for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
            if (!strcmp(tok, names[i].name))
                r |= names[i].bit, found = 1;
        if (!found)
            r |= strtoul(tok, NULL, 0);
    }
    return r;
}

static void read_fd(const char *op, int fd)
{
    char buf[256];
    if (fd < 0)
        return result(op, 0, NULL);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    int e = errno;
    close(fd);
    errno = e;
    if (n < 0)
        return result(op, 0, NULL);
    buf[n] = 0;
    buf[strcspn(buf, "\n")] = 0;
    result(op, 1, buf);
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static void op_ls(const char *op, const char *p)
{
    struct dirent **names;
    int n = scandir(p, &names, NULL, by_name);
    if (n < 0)
        return result(op, 0, NULL);
    char out[2048] = "";
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i]->d_name, ".") && strcmp(names[i]->d_name, "..")) {
            if (*out)
                strncat(out, ",", sizeof out - strlen(out) - 1);
            strncat(out, names[i]->d_name, sizeof out - strlen(out) - 1);
        }
        free(names[i]);
    }
    free(names);
    result(op, 1, out);
}

int main(void)
{
    char line[4096];
    char *a[6] = {0};
    int n;
    while ((n = next_command(line, sizeof line, a, 6)) > 0) {
        const char *op = a[0];
        if (!strcmp(op, "mount") && n >= 5)
            result(op, mount(arg(a[1]), a[2], arg(a[3]), flags_of(a[4]),
                             n > 5 ? arg(a[5]) : NULL) == 0, NULL);
        else if (!strcmp(op, "umount") && n >= 2)
            result(op, umount2(a[1], n > 2 ? MNT_DETACH : 0) == 0, NULL);
        else if (!strcmp(op, "pivot") && n == 3)
            result(op, syscall(SYS_pivot_root, a[1], a[2]) == 0, NULL);
        else if (!strcmp(op, "chroot") && n == 2)
            result(op, chroot(a[1]) == 0, NULL);
        else if (!strcmp(op, "chdir") && n == 2)
            result(op, chdir(a[1]) == 0, NULL);
        else if (!strcmp(op, "mkdir") && n == 2)
            result(op, mkdir(a[1], 0755) == 0, NULL);
        else if (!strcmp(op, "read") && n == 2)
            read_fd(op, open(a[1], O_RDONLY));
        else if (!strcmp(op, "readlink") && n == 2) {
            char buf[512];
            ssize_t r = readlink(a[1], buf, sizeof buf - 1);
            if (r >= 0)
                buf[r] = 0;
            result(op, r >= 0, r >= 0 ? buf : NULL);
        } else if (!strcmp(op, "ls") && n == 2)
            op_ls(op, a[1]);
        else if (!strcmp(op, "keep") && n == 2)
            result(op, (kept = open(a[1], O_RDONLY | O_DIRECTORY)) >= 0, NULL);
        else if (!strcmp(op, "fchdir"))
            result(op, fchdir(kept) == 0, NULL);
        else if (!strcmp(op, "openat") && n == 2)
            read_fd(op, openat(kept, a[1], O_RDONLY));
        else if (!strcmp(op, "climb") && n == 2) {
            int ok = 1;
            for (int i = 0; i < atoi(a[1]) && ok; i++)
                ok = chdir("..") == 0;
            result(op, ok, NULL);
        } else if (!strcmp(op, "raw") && n == 4) {
            long r = raw_syscall(atol(a[1]), (uint64_t)arg(a[2]), (uint64_t)arg(a[3]), 0, 0, 0, 0);
            errno = r < 0 ? (int)-r : 0;
            result(op, r >= 0, NULL);
        } else {
            printf("%d %s -> BAD-OP\n", lineno, op);
            return 2;
        }
    }
    return 0;
}
