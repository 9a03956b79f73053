/* Stat every entry of a directory through its descriptor, as ls -l, tar c
 * and find do (fstatat(dirfd, name)), in two directories that share names
 * but not contents, each opened and closed in turn (a directory's new
 * descriptor may reuse a closed one's number and host object); then the
 * same after a file changes, through a symlink, a mount point (when DIR/a/mnt
 * is one), and as uid 1000 in a 0700 directory. Prints what a host run
 * prints too. Usage: dirstat DIR */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "scratchdir.h"


static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The directory's own fstat through its descriptor (opendir makes one):
 * another directory's earlier descriptor may have had its number. */
static void dir_fstat(const char *label, int fd, const char *d) {
    struct stat f, p;
    if (fstat(fd, &f) || stat(d, &p)) {
        printf("%s: dir fstat %s\n", label, strerror(errno));
        return;
    }
    printf("%s dir mode=%o nlink=%lu uid=%u same=%d\n", label, f.st_mode,
           (unsigned long)f.st_nlink, f.st_uid, f.st_ino == p.st_ino && f.st_dev == p.st_dev);
}

/* Every entry of d, sorted (the order of a listing is the file system's). */
static void list(const char *label, const char *d) {
    int fd = open(d, O_RDONLY | O_DIRECTORY);
    DIR *dp = fd < 0 ? NULL : fdopendir(fd);
    if (!dp) {
        printf("%s: open %s\n", label, strerror(errno));
        return;
    }
    dir_fstat(label, fd, d);
    char *names[512];
    int n = 0;
    for (struct dirent *e; (e = readdir(dp)) != NULL && n < 512;)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            names[n++] = strdup(e->d_name);
    qsort(names, n, sizeof *names, by_name);
    /* in listing order first (what a prefetch expects), then sorted, twice */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < n; i++) {
            struct stat l, s;
            int el = fstatat(fd, names[i], &l, AT_SYMLINK_NOFOLLOW) ? errno : 0;
            int es = fstatat(fd, names[i], &s, 0) ? errno : 0;
            if (pass == 1)
                continue;
            printf("%s %-6s", label, names[i]);
            if (el)
                printf(" lstat %s", strerror(el));
            else
                printf(" mode=%o size=%ld nlink=%lu uid=%u", l.st_mode,
                       S_ISDIR(l.st_mode) ? 0L : (long)l.st_size, (unsigned long)l.st_nlink,
                       l.st_uid);
            if (es)
                printf(" | stat %s\n", strerror(es));
            else
                printf(" | mode=%o size=%ld\n", s.st_mode,
                       S_ISDIR(s.st_mode) ? 0L : (long)s.st_size);
        }
    }
    struct stat s;
    printf("%s missing: %s\n", label,
           fstatat(fd, "nonesuch", &s, AT_SYMLINK_NOFOLLOW) ? strerror(errno) : "found");
    for (int i = 0; i < n; i++)
        free(names[i]);
    dir_fstat(label, fd, d);        /* again: an answer published for this open */
    closedir(dp);
}

static void make(const char *name, int size, mode_t mode) {
    int fd = open(at(name), O_CREAT | O_TRUNC | O_WRONLY, mode);
    if (fd < 0) {
        perror(name);
        exit(2);
    }
    for (int i = 0; i < size; i++)
        if (write(fd, "x", 1) != 1)
            exit(2);
    fchmod(fd, mode);
    close(fd);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: dirstat DIR\n");
        return 2;
    }
    snprintf(dir, sizeof dir, "%s", argv[1]);
    char name[64];
    mkdir(at("a"), 0755);           /* may exist: with a mount on a/mnt */
    mkdir(at("b"), 0755);
    for (int i = 0; i < 150; i++) {         /* more than one prefetch's worth */
        snprintf(name, sizeof name, "a/f%03d", i);
        make(name, i, 0600 | (i % 8) << 3);
        if (i % 3 == 0) {                   /* b: the same names, other contents */
            snprintf(name, sizeof name, "b/f%03d", i);
            make(name, 1000 + i, 0644);
        }
    }
    symlink("f001", at("a/link"));
    symlink("nowhere", at("a/dangling"));
    mkdir(at("a/sub"), 0750);
    symlink("f002", at("b/link"));
    for (int round = 0; round < 2; round++) {
        list("a", at("a"));
        list("b", at("b"));
    }
    /* a change between two listings */
    make("a/f005", 77, 0640);
    unlink(at("a/f006"));
    rename(at("a/f007"), at("a/g007"));
    list("a2", at("a"));
    /* a directory's new subdirectory, between two fstats of one descriptor */
    int afd = open(at("a"), O_RDONLY | O_DIRECTORY);
    dir_fstat("a-before", afd, at("a"));
    dir_fstat("a-before", afd, at("a"));
    mkdir(at("a/newsub"), 0755);
    dir_fstat("a-after", afd, at("a"));
    chmod(at("a"), 0711);
    dir_fstat("a-chmod", afd, at("a"));
    close(afd);
    /* uid 1000: no search permission on a 0700 directory */
    mkdir(at("a/private"), 0700);
    make("a/private/p", 3, 0644);
    list("root-private", at("a/private"));
    int dfd = open(at("a/private"), O_RDONLY | O_DIRECTORY);
    struct stat s;
    printf("root, open dir: %s\n", fstatat(dfd, "p", &s, 0) ? strerror(errno) : "ok");
    pid_t pid = fork();
    if (pid == 0) {
        if (setgid(1000) || setuid(1000))
            _exit(3);
        printf("uid 1000, root's dir fd: %s\n", fstatat(dfd, "p", &s, 0) ? strerror(errno) : "ok");
        list("uid1000-private", at("a/private"));
        fflush(stdout);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("child: %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    return 0;
}
