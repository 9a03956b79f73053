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
#include <unistd.h>

#define CREATE_DIRS 8               /* published directories, one per tid & 7 */
#define NAME_SET 4096               /* hashes a directory holds (a power of 2) */
#define NAME_SET_FULL (NAME_SET * 3 / 4)
#define CREATE_LOG_MAX 256          /* full: the next create goes to Python */
#define NAME_MAX_BYTES 255
/* flags a create here takes; any other (O_DIRECTORY, O_TMPFILE, O_PATH,
 * O_SYNC, O_DIRECT, O_NOATIME, ...) goes to Python */
#define CREATE_FLAGS (O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_NONBLOCK \
                      | O_CLOEXEC | O_APPEND | O_NOFOLLOW | UML_GUEST_O_LARGEFILE)
/* what the guest's open description keeps (as tmpfs_inodes._OPEN_KEEP) */
#define DESCRIPTION_FLAGS (O_ACCMODE | O_APPEND | O_NONBLOCK)

struct create_dir {
    uint64_t gen;                   /* names generation it holds for; 0: empty */
    uint32_t serial;                /* which publish: log entries carry it */
    int32_t tid;
    uint32_t uid, gid, umask;
    uint64_t dev;                   /* the guest's st_dev of the file system */
    uint64_t next_ino, inodes_left;
    uint32_t names;                 /* hashes held */
    uint16_t key_len;
    char key[UML_PATH_KEY_MAX];
    uint64_t hashes[NAME_SET];      /* open addressing; 0: free */
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

/* 1 when hash h is (maybe) a name of d; with add, it is one afterwards. */
static int name_seen(struct create_dir *d, uint64_t h, int add) {
    uint32_t i = (uint32_t)(h ^ (h >> 32)) & (NAME_SET - 1);
    while (d->hashes[i]) {
        if (d->hashes[i] == h)
            return 1;
        i = (i + 1) & (NAME_SET - 1);
    }
    if (add) {
        d->hashes[i] = h;
        d->names++;
    }
    return 0;
}

int uml_create_publish(struct uml_ctx *c, int tid, const char *key, size_t key_len,
                       uint32_t uid, uint32_t gid, uint32_t umask, uint64_t dev,
                       uint64_t next_ino, uint64_t inodes_left,
                       const char *names, size_t names_len, uint32_t name_count) {
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
    memset(d->hashes, 0, sizeof d->hashes);
    d->names = 0;
    name_seen(d, name_hash(".", 1), 1);
    name_seen(d, name_hash("..", 2), 1);
    for (size_t at = 0; at < names_len;) {
        const char *end = memchr(names + at, 0, names_len - at);
        size_t n = end ? (size_t)(end - (names + at)) : names_len - at;
        name_seen(d, name_hash(names + at, n), 1);
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

uint32_t uml_create_serial(struct uml_ctx *c, int slot) {
    return c->creates && slot >= 0 && slot < CREATE_DIRS ? c->creates[slot].serial : 0;
}

static int log_has_room(struct uml_ctx *c) {
    return uml_log_room((void **)&c->create_log, c->create_count, sizeof *c->create_log, CREATE_LOG_MAX);
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
    char proc[32];
    struct stat ms;
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", mfd);
    int gfd = fstat(mfd, &ms) == 0
              ? open(proc, (int)(flags & DESCRIPTION_FLAGS) | O_CLOEXEC) : -1;
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

UML_INTERNAL int uml_answer_create(struct uml_ctx *c, const struct seccomp_notif *req) {
    const __u64 *a = req->data.args;
    int tid = (int)req->pid;
    int dirfd = AT_FDCWD;
    uint64_t path, flags;
    uint32_t mode;
    if (c->creates == NULL)
        return 0;
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
    struct create_dir *d = &c->creates[tid & (CREATE_DIRS - 1)];
    if (d->gen != names_generation(c) || d->tid != tid || d->inodes_left == 0
            || d->names >= NAME_SET_FULL)
        return 0;
    mode = mode & 07777 & ~d->umask;
    if (mode & (S_ISUID | S_ISGID))
        return 0;                   /* who keeps set-id bits: the kernel knows */
    char text[UML_PATH_KEY_MAX], key[UML_PATH_KEY_MAX];
    int64_t len = uml_mem_read_str(tid, path, text, sizeof text);
    if (len <= 0)
        return 0;                   /* EFAULT, ENOENT, or longer than a key */
    const char *slash = memrchr(text, '/', (size_t)len);
    size_t dir_len = slash ? (size_t)(slash - text) + 1 : 0;
    const char *name = text + dir_len;
    size_t name_len = (size_t)len - dir_len;
    if (name_len == 0 || name_len > NAME_MAX_BYTES)
        return 0;                   /* a trailing slash, ENAMETOOLONG */
    int key_len = uml_path_key(tid, dirfd, text, dir_len, key);   /* the directory part's */
    if (key_len != d->key_len || memcmp(key, d->key, (size_t)key_len) != 0)
        return 0;
    uint64_t h = name_hash(name, name_len);
    if (name_seen(d, h, 0) || !log_has_room(c))
        return 0;                   /* it may exist: open it, or EEXIST */
    int made = make_file(c, req, d, tid & (CREATE_DIRS - 1), name, name_len, flags, mode);
    if (made <= 0)
        return made < 0;            /* nothing to answer any more, nothing made */
    name_seen(d, h, 1);
    c->stats.fast_creates++;
    return 1;
}

const uint32_t *uml_create_log_count(struct uml_ctx *c) {
    return &c->create_count;
}

int uml_create_log_take(struct uml_ctx *c, struct uml_create *out, int max) {
    return uml_log_take(c->create_log, &c->create_count, sizeof *out, out, max);
}
