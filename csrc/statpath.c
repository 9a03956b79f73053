/* umlpy accelerator: stat of a path answered in C.
 *
 * Python's import system, compilers and make stat the same paths over and
 * over. When the kernel in Python resolves a stat whose walk it may cache
 * (file systems whose names only the VFS changes, no magic link) and whose
 * answer cannot change without the kernel's knowing, it publishes the answer
 * here, keyed by the asking task's resolution context, the path text and
 * whether the last component is followed. Tasks whose root, cwd and
 * credentials are the same share a context (umlpy/kernel/contexts.py), so a
 * child finds what its parent or an earlier sibling published. The answer
 * holds while the generation of fastnotif.c stands, which any call that may
 * change names or attributes ends. A task whose root, cwd or credentials
 * change (chdir, chroot, setuid, ...) gets a new context. A path from a
 * directory descriptor (fstatat(dirfd, name): ls -l, tar c, find) is keyed
 * by the descriptor's host object in place of its text: the kernel gives
 * every open of a directory a host directory of its own (a stand-in), whose
 * identity (device, inode, ctime) C reads with a stat of /proc/TID/fd/N. The
 * key is then a NUL byte, those three numbers and the path text, which no
 * guest path can begin with.
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

#define PATH_SLOTS 4096             /* a cache of pairs: a third answer for a pair */
#define PATH_WAYS 2                 /* replaces the older of its two */

/* Task tid's resolution context, 0 when it has none (not in the table). */
static uint32_t context_of(struct uml_ctx *c, int tid) {
    const struct slot *t = uml_tab_find(c, tid);
    return t ? t->ctx : 0;
}

UML_INTERNAL uint32_t uml_key_hash(uint32_t ctx, const char *name, size_t len, int salt) {
    uint64_t h = 0xcbf29ce484222325ULL ^ (uint64_t)ctx ^ ((uint64_t)salt << 40);
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)name[i];
        h *= 0x100000001b3ULL;
    }
    return (uint32_t)(h ^ (h >> 32));
}

/* The first slot of the pair a key may be in (a listing's answers,
 * published together, would otherwise collide: then the reader misses). */
static uint32_t set_of(uint32_t ctx, const char *name, size_t len, int nofollow) {
    return uml_key_hash(ctx, name, len, nofollow) & (PATH_SLOTS - 1) & ~(uint32_t)(PATH_WAYS - 1);
}

static int slot_holds(const struct path_slot *s, uint32_t ctx, const char *name, size_t len,
                      int nofollow) {
    return s->ctx == ctx && s->len == len && s->nofollow == (nofollow != 0)
           && memcmp(s->name, name, len) == 0;
}

/* Where an answer for the key goes: the slot that holds it already, else
 * one of this generation's that is free (never filled, or voided), else
 * the one filled earlier. */
static struct path_slot *slot_for(struct uml_ctx *c, uint32_t ctx, const char *name, size_t len,
                                  int nofollow) {
    struct path_slot *set = &c->paths[set_of(ctx, name, len, nofollow)];
    struct path_slot *pick = NULL;
    uint64_t gen = uml_stat_generation(c);
    for (int w = 0; w < PATH_WAYS; w++) {
        struct path_slot *s = &set[w];
        if (slot_holds(s, ctx, name, len, nofollow))
            return s;
        if (pick == NULL || (pick->gen == gen && (s->gen != gen || s->stamp < pick->stamp)))
            pick = s;
    }
    return pick;
}

int uml_path_publish(struct uml_ctx *c, int tid, const char *name, size_t len, int nofollow,
                     int err, int host_fd, const struct uml_fstat *view) {
    if (len == 0 || len >= UML_PATH_KEY_MAX)
        return -ENAMETOOLONG;
    uint32_t ctx = context_of(c, tid);
    if (ctx == 0)
        return -ESRCH;
    if (!c->paths) {
        c->paths = calloc(PATH_SLOTS, sizeof *c->paths);
        if (!c->paths)
            return -ENOMEM;
    }
    struct path_slot *s = slot_for(c, ctx, name, len, nofollow);
    s->stamp = ++c->path_stamp;
    s->ctx = ctx;
    s->err = err;
    s->host_fd = host_fd;
    s->len = (uint16_t)len;
    s->nofollow = nofollow != 0;
    if (view)
        s->view = *view;
    memcpy(s->name, name, len);
    s->open_dirfd = -1;             /* until uml_path_open_recipe says how */
    s->gen = uml_stat_generation(c);
    return (int)(s - c->paths);
}

int uml_path_open_recipe(struct uml_ctx *c, int slot, int dirfd, const char *rel, size_t rel_len,
                         uint32_t resolve, uint32_t extra_flags, uint64_t dev, uint64_t ino) {
    if (!c->paths || slot < 0 || slot >= PATH_SLOTS || rel_len == 0
            || rel_len >= UML_PATH_KEY_MAX || dirfd < AT_FDCWD)
        return -EINVAL;
    struct path_slot *s = &c->paths[slot];
    s->open_resolve = resolve;
    s->open_flags = extra_flags;
    s->open_dev = dev;
    s->open_ino = ino;
    s->rel_len = (uint16_t)rel_len;
    memcpy(s->rel, rel, rel_len);
    s->rel[rel_len] = 0;
    s->open_dirfd = dirfd;
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

UML_INTERNAL int uml_path_key(int tid, int dirfd, const char *name, size_t len, char *key) {
    size_t at = 0;
    if (name[0] != '/' && dirfd != AT_FDCWD) {
        char proc[48];
        struct stat ds;
        if (dirfd < 0)
            return -1;
        snprintf(proc, sizeof proc, "/proc/%d/fd/%d", tid, dirfd);
        if (stat(proc, &ds) != 0)
            return -1;              /* EBADF: Python words it */
        uml_dir_key(&ds, key);
        at = UML_DIR_KEY_PREFIX;
    }
    if (at + len >= UML_PATH_KEY_MAX)
        return -1;
    memcpy(key + at, name, len);
    return (int)(at + len);
}

UML_INTERNAL struct path_slot *uml_path_slot(struct uml_ctx *c, int tid, const char *key,
                                             size_t len, int nofollow) {
    uint32_t ctx = c->paths == NULL ? 0 : context_of(c, tid);
    if (ctx == 0)
        return NULL;
    struct path_slot *set = &c->paths[set_of(ctx, key, len, nofollow)];
    for (int w = 0; w < PATH_WAYS; w++)
        if (set[w].gen == uml_stat_generation(c) && slot_holds(&set[w], ctx, key, len, nofollow))
            return &set[w];
    return NULL;
}

int uml_stat_path(struct uml_ctx *c, int tid, int dirfd, const char *name, size_t len,
                  int nofollow, struct guest_stat *gs, int *err) {
    char key[UML_PATH_KEY_MAX];
    if (c->paths == NULL)
        return 0;
    int key_len = uml_path_key(tid, dirfd, name, len, key);
    const struct path_slot *s = key_len < 0 ? NULL
                                : uml_path_slot(c, tid, key, (size_t)key_len, nofollow);
    if (s == NULL)
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
