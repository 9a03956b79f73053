/* umlpy accelerator: stat of a path answered in C.
 *
 * Python's import system, compilers and make stat the same paths over and
 * over. When the kernel in Python resolves a stat whose walk it may cache
 * (file systems whose names only the VFS changes, no magic link) and whose
 * answer cannot change without the kernel's knowing, it publishes the answer
 * here, keyed by the asking task, the path text and whether the last
 * component is followed. The answer holds while the generation of
 * fastnotif.c stands, which any call that may change names or attributes
 * ends. The task's root and cwd cannot change without a call that ends the
 * generation (chdir, chroot, setns, ...). A path from a directory descriptor
 * (fstatat(dirfd, name): ls -l, tar c, find) is keyed by the descriptor's
 * host object instead: the kernel gives every open of a directory a host
 * directory of its own (a stand-in), whose identity (device, inode, ctime)
 * C reads with a stat of /proc/TID/fd/N. The key is then a NUL byte, those
 * three numbers and the path text, which no guest path can begin with.
 */
#define _GNU_SOURCE
#include "accel.h"
#include "accel_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PATH_SLOTS 4096             /* a cache: a colliding answer replaces the older one */

struct path_slot {
    uint64_t gen;                   /* 0: never filled */
    int32_t tid;
    int32_t err;                    /* the answer is this errno (ENOENT) */
    int32_t host_fd;                /* the kernel's descriptor to read live fields from, or -1 */
    uint16_t len;
    uint8_t nofollow;
    struct uml_fstat view;
    char name[UML_PATH_KEY_MAX];
};

static uint32_t slot_of(int tid, const char *name, size_t len, int nofollow) {
    uint64_t h = 0xcbf29ce484222325ULL ^ (uint64_t)(uint32_t)tid ^ ((uint64_t)nofollow << 40);
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)name[i];
        h *= 0x100000001b3ULL;
    }
    return (uint32_t)(h ^ (h >> 32)) & (PATH_SLOTS - 1);
}

int uml_path_publish(struct uml_ctx *c, int tid, const char *name, size_t len, int nofollow,
                     int err, int host_fd, const struct uml_fstat *view) {
    if (len == 0 || len >= UML_PATH_KEY_MAX)
        return -ENAMETOOLONG;
    if (!c->paths) {
        c->paths = calloc(PATH_SLOTS, sizeof *c->paths);
        if (!c->paths)
            return -ENOMEM;
    }
    struct path_slot *s = &c->paths[slot_of(tid, name, len, nofollow != 0)];
    s->tid = tid;
    s->err = err;
    s->host_fd = host_fd;
    s->len = (uint16_t)len;
    s->nofollow = nofollow != 0;
    if (view)
        s->view = *view;
    memcpy(s->name, name, len);
    s->gen = uml_stat_generation(c);
    return 0;
}

UML_INTERNAL void uml_dir_key(const struct stat *ds, char *key) {
    uint64_t dev = ds->st_dev, ino = ds->st_ino;
    int64_t ctime = uml_ts_ns(&ds->st_ctim);
    key[0] = 0;
    memcpy(key + 1, &dev, 8);
    memcpy(key + 9, &ino, 8);
    memcpy(key + 17, &ctime, 8);
}

int uml_stat_path(struct uml_ctx *c, int tid, int dirfd, const char *name, size_t len,
                  int nofollow, struct guest_stat *gs, int *err) {
    char key[UML_PATH_KEY_MAX];
    if (c->paths == NULL)
        return 0;
    if (name[0] != '/' && dirfd != AT_FDCWD) {
        char proc[48];
        struct stat ds;
        if (len + UML_DIR_KEY_PREFIX >= UML_PATH_KEY_MAX || dirfd < 0)
            return 0;
        snprintf(proc, sizeof proc, "/proc/%d/fd/%d", tid, dirfd);
        if (stat(proc, &ds) != 0)
            return 0;               /* EBADF: Python words it */
        uml_dir_key(&ds, key);
        memcpy(key + UML_DIR_KEY_PREFIX, name, len);
        name = key;
        len += UML_DIR_KEY_PREFIX;
    }
    const struct path_slot *s = &c->paths[slot_of(tid, name, len, nofollow != 0)];
    if (s->gen != uml_stat_generation(c) || s->tid != tid || s->len != len
        || s->nofollow != (nofollow != 0) || memcmp(s->name, name, len) != 0)
        return 0;
    if (s->err) {
        *err = s->err;
        return 1;
    }
    if (s->host_fd < 0)
        return uml_stat_from_view(&s->view, NULL, gs);
    struct stat hs;         /* the answer's live fields: the kernel's own descriptor */
    if (fstat(s->host_fd, &hs) != 0)
        return 0;
    return uml_stat_from_view(&s->view, &hs, gs);
}
