/* umlpy accelerator: a new tmpfs file made in C (open with O_CREAT).
 *
 * tar x, cp -r and unpackers create file after file in one directory. When
 * the kernel in Python has just created a file in a tmpfs directory, it
 * publishes that directory for the creating task: the path text that led to
 * it (keyed as statpath.c keys a path: from the cwd, absolute, or from a
 * directory descriptor's host object), the owner, group and umask a new file
 * there gets, the hashes of the names it holds, the file system's next inode
 * number and how many inodes are left. The next create there of a name not
 * among those hashes C makes itself: a memfd as the page cache, a new open
 * description of it installed in the guest (ADDFD), the file's view published
 * for fstat and fastattr.c, and an entry in a log that the kernel adopts
 * before it handles its next event (uml_create_log_take), which gives the
 * directory the name. A hash that matches may be a name that exists: Python
 * decides, as it does set-id modes, unusual flags, a full log and any error.
 *
 * A published directory holds until Python handles an event that may change
 * names, permissions, credentials or the umask (names_gen). fastattr.c's own
 * changes touch regular files only, so they leave it standing; a create here
 * voids every published stat (the directory's times and size moved).
 */
#define _GNU_SOURCE
#include "accel.h"
#include "accel_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define CREATE_DIRS 8               /* published directories, one per tid & 7 */
#define NAME_SET 4096               /* hashes a directory holds (a power of 2) */
#define NAME_SET_FULL (NAME_SET * 3 / 4)
#define NAME_MAX_BYTES 255
/* flags a create here takes; any other (O_DIRECTORY, O_TMPFILE, O_PATH,
 * O_SYNC, O_DIRECT, O_NOATIME, ...) goes to Python */
#define CREATE_FLAGS (O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_NONBLOCK \
                      | O_CLOEXEC | O_APPEND | O_NOFOLLOW | UML_GUEST_O_LARGEFILE)
/* what the guest's open description keeps (as tmpfs_inodes._OPEN_KEEP) */
#define DESCRIPTION_FLAGS (O_ACCMODE | O_APPEND | O_NONBLOCK)

/* A name of a published directory: the name itself is in the arena. */
enum { NAME_HELD = 1,               /* exists; what it is, Python knows */
       NAME_MINE = 2,               /* exists, and the task may unlink it here */
       NAME_GONE = 3 };             /* unlinked here: free to create again */
struct name_ent {
    uint64_t hash;                  /* 0: a free entry */
    uint32_t off;                   /* in the arena */
    uint16_t len;
    uint8_t state;
};

struct create_dir {
    uint64_t gen;                   /* names generation it holds for; 0: empty */
    uint32_t serial;                /* which publish: log entries carry it */
    int32_t tid;
    uint32_t uid, gid, umask;
    uint64_t dev;                   /* the guest's st_dev of the file system */
    uint64_t next_ino, inodes_left;
    uint32_t names;                 /* entries in use, gone ones too */
    uint16_t key_len;
    char key[UML_PATH_KEY_MAX];
    struct name_ent ents[NAME_SET]; /* open addressing on the hash */
    char *arena;                    /* the names, one after the other */
    uint32_t arena_len, arena_cap;
};

static uint64_t names_generation(struct uml_ctx *c) {
    return __atomic_load_n(&c->names_gen, __ATOMIC_ACQUIRE);
}

static uint64_t name_hash(const char *name, size_t len) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)name[i];
        h *= 0x100000001b3ULL;
    }
    return h ? h : 1;
}

/* The entry of `name`, or the free entry where it would go. */
static struct name_ent *name_find(struct create_dir *d, const char *name, size_t len,
                                  uint64_t h) {
    uint32_t i = (uint32_t)(h ^ (h >> 32)) & (NAME_SET - 1);
    for (;; i = (i + 1) & (NAME_SET - 1)) {
        struct name_ent *e = &d->ents[i];
        if (e->hash == 0 || (e->hash == h && e->len == len
                             && memcmp(d->arena + e->off, name, len) == 0))
            return e;
    }
}

/* Room in the arena for len more bytes; 0 when there is none. */
static int arena_room(struct create_dir *d, size_t len) {
    if (d->arena_len + len <= d->arena_cap)
        return 1;
    size_t cap = d->arena_cap ? d->arena_cap : 4096;
    while (cap < d->arena_len + len)
        cap *= 2;
    char *a = realloc(d->arena, cap);
    if (!a)
        return 0;
    d->arena = a;
    d->arena_cap = (uint32_t)cap;
    return 1;
}

/* Fill free entry e with name (arena_room said yes). */
static void name_add(struct create_dir *d, struct name_ent *e, uint64_t h, const char *name,
                     size_t len, int state) {
    memcpy(d->arena + d->arena_len, name, len);
    e->hash = h;
    e->off = d->arena_len;
    e->len = (uint16_t)len;
    e->state = (uint8_t)state;
    d->arena_len += (uint32_t)len;
    d->names++;
}

static void name_publish(struct create_dir *d, const char *name, size_t len, int state) {
    uint64_t h = name_hash(name, len);
    struct name_ent *e = name_find(d, name, len, h);
    if (e->hash == 0)
        name_add(d, e, h, name, len, state);
}

int uml_create_publish(struct uml_ctx *c, int tid, const char *key, size_t key_len,
                       uint32_t uid, uint32_t gid, uint32_t umask, uint64_t dev,
                       uint64_t next_ino, uint64_t inodes_left,
                       const char *names, size_t names_len, uint32_t name_count,
                       const uint8_t *removable) {
    if (key_len >= UML_PATH_KEY_MAX)
        return -ENAMETOOLONG;
    if (name_count + 2 > NAME_SET_FULL)
        return -E2BIG;
    if (!c->creates) {
        c->creates = calloc(CREATE_DIRS, sizeof *c->creates);
        if (!c->creates)
            return -ENOMEM;
    }
    /* inode numbers and the inode budget are the file system's: one
     * published directory per file system hands them out */
    for (int i = 0; i < CREATE_DIRS; i++)
        if (c->creates[i].dev == dev)
            c->creates[i].gen = 0;
    int slot = tid & (CREATE_DIRS - 1);
    struct create_dir *d = &c->creates[slot];
    d->gen = 0;
    memset(d->ents, 0, sizeof d->ents);
    d->names = 0;
    d->arena_len = 0;
    if (!arena_room(d, names_len + 3))
        return -ENOMEM;
    name_publish(d, ".", 1, NAME_HELD);
    name_publish(d, "..", 2, NAME_HELD);
    uint32_t i = 0;
    for (size_t at = 0; at < names_len && i < name_count; i++) {
        const char *end = memchr(names + at, 0, names_len - at);
        size_t n = end ? (size_t)(end - (names + at)) : names_len - at;
        name_publish(d, names + at, n, removable[i] ? NAME_MINE : NAME_HELD);
        at += n + 1;
    }
    d->serial = ++c->create_serial;
    d->tid = tid;
    d->uid = uid;
    d->gid = gid;
    d->umask = umask;
    d->dev = dev;
    d->next_ino = next_ino;
    d->inodes_left = inodes_left;
    d->key_len = (uint16_t)key_len;
    memcpy(d->key, key, key_len);
    d->gen = names_generation(c);
    return slot;
}

UML_INTERNAL void uml_creates_free(struct uml_ctx *c) {
    if (c->creates)
        for (int i = 0; i < CREATE_DIRS; i++)
            free(c->creates[i].arena);
    free(c->creates);
    c->creates = NULL;
}

uint32_t uml_create_serial(struct uml_ctx *c, int slot) {
    return c->creates && slot >= 0 && slot < CREATE_DIRS ? c->creates[slot].serial : 0;
}

static int log_has_room(struct uml_ctx *c) {
    return uml_log_room((void **)&c->create_log, c->create_count, sizeof *c->create_log, UML_LOG_MAX);
}


/* Make the file: 1 when the guest has its descriptor, -1 when the guest is
 * gone (or a signal interrupted the call: it comes again), 0 when Python
 * must do it all. */
static int make_file(struct uml_ctx *c, const struct seccomp_notif *req, struct create_dir *d,
                     int slot, const char *name, size_t name_len, uint64_t flags, uint32_t mode) {
    char memfd_name[32];
    snprintf(memfd_name, sizeof memfd_name, "tmpfs:%llu", (unsigned long long)d->next_ino);
    int mfd = memfd_create(memfd_name, MFD_CLOEXEC);
    if (mfd < 0)
        return 0;
    char name_of_mfd[16];
    struct stat ms;
    snprintf(name_of_mfd, sizeof name_of_mfd, "%d", mfd);
    int gfd = fstat(mfd, &ms) == 0     /* the guest's own open description of it */
              ? openat(c->self_fds, name_of_mfd, (int)(flags & DESCRIPTION_FLAGS) | O_CLOEXEC) : -1;
    if (gfd < 0) {
        close(mfd);
        return 0;
    }
    int r = uml_notif_addfd(c, req->id, gfd, (unsigned)(flags & O_CLOEXEC));
    close(gfd);
    if (r < 0) {
        close(mfd);
        return r == -ENOENT ? -1 : 0;     /* EMFILE and the like: Python words it */
    }
    int64_t t = uml_ts_ns(&ms.st_ctim);
    struct uml_fstat v;
    memset(&v, 0, sizeof v);
    v.host_dev = (uint64_t)ms.st_dev;
    v.host_ino = (uint64_t)ms.st_ino;
    v.host_ctime_ns = t;
    v.flags = UML_FSTAT_LIVE_DATA | UML_FSTAT_TMPFS_CTIME | UML_FSTAT_SETATTR;
    v.mode = S_IFREG | mode;
    v.uid = d->uid;
    v.gid = d->gid;
    v.dev = d->dev;
    v.ino = d->next_ino;
    v.nlink = 1;
    v.blksize = 4096;
    v.atime_ns = v.mtime_ns = v.ctime_ns = t;
    v.host_fd = mfd;
    uml_views_void(c);              /* the directory's own stat, a name's ENOENT */
    uml_fstat_publish(c, &v);

    struct uml_create *e = &c->create_log[c->create_count];
    memset(e, 0, sizeof *e);
    e->slot = (uint32_t)slot;
    e->serial = d->serial;
    e->ino = d->next_ino;
    e->host_dev = v.host_dev;
    e->host_ino = v.host_ino;
    e->host_fd = mfd;
    e->mode = v.mode;
    e->uid = d->uid;
    e->gid = d->gid;
    e->time_ns = t;
    e->name_len = (uint32_t)name_len;
    memcpy(e->name, name, name_len);
    __atomic_store_n(&c->create_count, c->create_count + 1, __ATOMIC_RELEASE);
    d->next_ino++;
    d->inodes_left--;
    return 1;
}

/* Which entry of which published directory a call names: task tid's
 * directory whose key the text of path (from dirfd) up to its last '/' has.
 * NULL when there is none; else the name (in text) and its entry. */
static struct create_dir *entry_of_call(struct uml_ctx *c, int tid, int dirfd, uint64_t path,
                                        char *text, const char **name, size_t *name_len,
                                        struct name_ent **ent) {
    if (c->creates == NULL)
        return NULL;
    struct create_dir *d = &c->creates[tid & (CREATE_DIRS - 1)];
    if (d->gen != names_generation(c) || d->tid != tid || d->names >= NAME_SET_FULL)
        return NULL;
    int64_t len = uml_mem_read_str(tid, path, text, UML_PATH_KEY_MAX);
    if (len <= 0)
        return NULL;                /* EFAULT, ENOENT, or longer than a key */
    const char *slash = memrchr(text, '/', (size_t)len);
    size_t dir_len = slash ? (size_t)(slash - text) + 1 : 0;
    *name = text + dir_len;
    *name_len = (size_t)len - dir_len;
    if (*name_len == 0 || *name_len > NAME_MAX_BYTES)
        return NULL;                /* a trailing slash, ENAMETOOLONG */
    char key[UML_PATH_KEY_MAX];
    int key_len = uml_path_key(tid, dirfd, text, dir_len, key);   /* the directory part's */
    if (key_len != d->key_len || memcmp(key, d->key, (size_t)key_len) != 0)
        return NULL;
    *ent = name_find(d, *name, *name_len, name_hash(*name, *name_len));
    return d;
}

UML_INTERNAL int uml_answer_create(struct uml_ctx *c, const struct seccomp_notif *req) {
    const __u64 *a = req->data.args;
    int tid = (int)req->pid;
    int dirfd = AT_FDCWD;
    uint64_t path, flags;
    uint32_t mode;
    switch (req->data.nr) {
    case SYS_open:
        path = a[0], flags = a[1], mode = (uint32_t)a[2];
        break;
    case SYS_creat:
        path = a[0], flags = O_CREAT | O_WRONLY | O_TRUNC, mode = (uint32_t)a[1];
        break;
    default:                        /* openat */
        dirfd = (int)a[0], path = a[1], flags = a[2], mode = (uint32_t)a[3];
        break;
    }
    if (!(flags & O_CREAT) || (flags & ~(uint64_t)CREATE_FLAGS) || (flags & O_ACCMODE) == O_ACCMODE)
        return 0;
    char text[UML_PATH_KEY_MAX];
    const char *name;
    size_t name_len;
    struct name_ent *e;
    struct create_dir *d = entry_of_call(c, tid, dirfd, path, text, &name, &name_len, &e);
    if (d == NULL || d->inodes_left == 0)
        return 0;
    mode = mode & 07777 & ~d->umask;
    if (mode & (S_ISUID | S_ISGID))
        return 0;                   /* who keeps set-id bits: the kernel knows */
    if ((e->hash && e->state != NAME_GONE) || !log_has_room(c)
            || (e->hash == 0 && !arena_room(d, name_len)))
        return 0;                   /* it exists: open it, or EEXIST */
    int made = make_file(c, req, d, tid & (CREATE_DIRS - 1), name, name_len, flags, mode);
    if (made <= 0)
        return made < 0;            /* nothing to answer any more, nothing made */
    if (e->hash == 0)
        name_add(d, e, name_hash(name, name_len), name, name_len, NAME_MINE);
    else
        e->state = NAME_MINE;
    c->stats.fast_creates++;
    return 1;
}

/* unlink and unlinkat(dirfd, path, 0) of a name the published directory
 * says the task may remove (not a directory nor a mount point, the sticky
 * bit allowing): the kernel adopts the removal before its next event, as it
 * adopts a create. 1 when answered. */
UML_INTERNAL int uml_answer_unlink(struct uml_ctx *c, const struct seccomp_notif *req) {
    const __u64 *a = req->data.args;
    int unlinkat = req->data.nr == SYS_unlinkat;
    if (unlinkat && a[2] != 0)
        return 0;                   /* AT_REMOVEDIR, or a flag to refuse */
    char text[UML_PATH_KEY_MAX];
    const char *name;
    size_t name_len;
    struct name_ent *e;
    int tid = (int)req->pid;
    struct create_dir *d = entry_of_call(c, tid, unlinkat ? (int)a[0] : AT_FDCWD,
                                         unlinkat ? a[1] : a[0], text, &name, &name_len, &e);
    if (d == NULL || e->state != NAME_MINE || !log_has_room(c))
        return 0;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    /* answered first: a call a signal interrupted comes again, and must
     * find the name */
    if (uml_send(c, req->id, 0, 0, 0) != 0)
        return 1;
    e->state = NAME_GONE;
    uml_views_void(c);              /* the link count of its open files, the name's stat */
    struct uml_create *l = &c->create_log[c->create_count];
    memset(l, 0, sizeof *l);
    l->slot = (uint32_t)(tid & (CREATE_DIRS - 1));
    l->serial = d->serial;
    l->removed = 1;
    l->time_ns = uml_ts_ns(&now);
    l->name_len = (uint32_t)name_len;
    memcpy(l->name, name, name_len);
    __atomic_store_n(&c->create_count, c->create_count + 1, __ATOMIC_RELEASE);
    c->stats.fast_unlinks++;
    return 1;
}

const uint32_t *uml_create_log_count(struct uml_ctx *c) {
    return &c->create_count;
}

int uml_create_log_take(struct uml_ctx *c, struct uml_create *out, int max) {
    return uml_log_take(c->create_log, &c->create_count, sizeof *out, out, max);
}
