/* umlpy accelerator: notifications answered in C, without Python.
 *
 * getpid and friends come from the per-task table mirrored from Python.
 *
 * fstat (stat, lstat and newfstatat of a path: statpath.c):
 * A guest descriptor is a host descriptor, so C can learn which host object
 * an fstat asks about (stat of /proc/TID/fd/N). What the guest must see of
 * it (its inode number, owner, mode, link count in the guest's file system)
 * only the kernel in Python knows; Python publishes that here, keyed by the
 * host object's identity, when it answers an open or an fstat.
 *
 * A published view is valid until the kernel in Python next handles
 * anything that may change a file's attributes: every event C hands to
 * Python bumps a generation that voids the whole table, except the
 * notifications of calls that change nothing (stat, read-only open, ...).
 * What a guest changes natively (size and times, by write and mmap) is read
 * live from the host object; for a host file, a changed host ctime voids
 * the view (a write, a chmod or chown on the host).
 */
#define _GNU_SOURCE
#include "accel.h"
#include "accel_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#define FSTAT_SLOTS 4096            /* a cache: a colliding view replaces the older one */
#define AT_EMPTY_PATH_FLAG 0x1000
#define AT_SYMLINK_NOFOLLOW_FLAG 0x100
#define AT_EACCESS_FLAG 0x200
#define AT_NEWFSTATAT_FLAGS (0x100 | 0x1000 | 0x800)   /* NOFOLLOW, EMPTY_PATH, NO_AUTOMOUNT */

struct fstat_slot {
    uint64_t gen;                   /* 0: never filled (generations start at 1) */
    struct uml_fstat view;
};


static uint32_t slot_of(uint64_t dev, uint64_t ino) {
    uint64_t h = (ino * 0x9E3779B97F4A7C15ULL) ^ (dev * 0xC2B2AE3D27D4EB4FULL);
    return (uint32_t)(h >> 40) & (FSTAT_SLOTS - 1);
}

UML_INTERNAL int64_t uml_ts_ns(const struct timespec *t) {
    return (int64_t)t->tv_sec * 1000000000LL + t->tv_nsec;
}

static void split_ns(int64_t ns, int64_t *sec, int64_t *nsec) {
    *sec = ns / 1000000000LL;
    *nsec = ns % 1000000000LL;
    if (*nsec < 0) {                /* floor division, as Python's // and % */
        *nsec += 1000000000LL;
        *sec -= 1;
    }
}

int uml_fstat_publish(struct uml_ctx *c, const struct uml_fstat *view) {
    if (!c->fstats) {
        c->fstats = calloc(FSTAT_SLOTS, sizeof *c->fstats);
        if (!c->fstats)
            return -ENOMEM;
    }
    struct fstat_slot *s = &c->fstats[slot_of(view->host_dev, view->host_ino)];
    s->view = *view;
    s->gen = uml_stat_generation(c);
    return 0;
}

UML_INTERNAL uint64_t uml_stat_generation(struct uml_ctx *c) {
    return __atomic_load_n(&c->fstat_gen, __ATOMIC_ACQUIRE);
}

UML_INTERNAL void uml_views_void(struct uml_ctx *c) {
    __atomic_add_fetch(&c->fstat_gen, 1, __ATOMIC_ACQ_REL);
}

void uml_fstat_forget(struct uml_ctx *c) {
    uml_views_void(c);
    __atomic_add_fetch(&c->names_gen, 1, __ATOMIC_ACQ_REL);
}

/* Calls whose handlers change no file's attributes, owner or links. */
static int changes_nothing(const struct seccomp_notif *req) {
    switch (req->data.nr) {
    case SYS_stat: case SYS_fstat: case SYS_lstat: case SYS_newfstatat: case SYS_statx:
    case SYS_access: case SYS_faccessat: case SYS_faccessat2:
    case SYS_readlink: case SYS_readlinkat: case SYS_getcwd:
    case SYS_statfs: case SYS_fstatfs: case SYS_getdents64:
    case SYS_getxattr: case SYS_lgetxattr: case SYS_fgetxattr:
    case SYS_listxattr: case SYS_llistxattr: case SYS_flistxattr:
    case SYS_uname: case SYS_sysinfo:       /* python3 asks at every start */
    case SYS_getgroups: case SYS_getresuid: case SYS_getresgid:
    case SYS_getpgrp: case SYS_getpgid: case SYS_getsid:
    case SYS_getsockname: case SYS_getpeername: case SYS_getsockopt:
        return 1;
    case SYS_open: case SYS_openat: {
        uint64_t flags = req->data.args[req->data.nr == SYS_open ? 1 : 2];
        return (flags & O_ACCMODE) == O_RDONLY && !(flags & (O_CREAT | O_TRUNC))
               && (flags & O_TMPFILE) != O_TMPFILE;
    }
    default:
        return 0;
    }
}

void uml_fstat_note_python(struct uml_ctx *c, const struct seccomp_notif *req) {
    if (req == NULL || !changes_nothing(req))
        uml_fstat_forget(c);
}

/* Ptrace stops whose Python handlers change no name, attribute, credential
 * or cwd: a fork mirrors the child, an exec checks the image and resumes, a
 * death or a wait is bookkeeping (the host closed the descriptors), a signal
 * gets its sender's guest pid. A fork+exec+wait loop then keeps
 * what was published (ld.so's opens). Anything else may change them. */
static int stop_changes_nothing(const struct uml_event *ev) {
    switch (ev->kind) {
    case UML_EV_FORK: case UML_EV_VFORK: case UML_EV_CLONE:
    case UML_EV_EXEC: case UML_EV_EXITED: case UML_EV_KILLED:
    case UML_EV_SIGNAL: case UML_EV_TRAPSTOP:
        return 1;
    case UML_EV_SECCOMP:
        return ev->nr == SYS_execve || ev->nr == SYS_execveat
               || ev->nr == SYS_wait4 || ev->nr == SYS_waitid;
    case UML_EV_SYSEXIT:
        return ev->nr == SYS_wait4 || ev->nr == SYS_waitid;
    default:
        return 0;
    }
}

UML_INTERNAL void uml_stop_note_python(struct uml_ctx *c, const struct uml_event *ev) {
    if (!stop_changes_nothing(ev))
        uml_fstat_forget(c);
}

/* The guest's struct stat from view v and, when v reads anything live, the
 * host object's own stat hs (NULL: none to read). 0 when v does not hold. */
UML_INTERNAL int uml_stat_from_view(const struct uml_fstat *v, const struct stat *hs,
                                    void *guest_stat) {
    struct guest_stat *out = guest_stat;
    int64_t ctime = v->ctime_ns;
    int64_t size = v->size, blocks = v->blocks, atime = v->atime_ns, mtime = v->mtime_ns;
    if (hs == NULL) {
        if (v->flags)
            return 0;
    } else {
        if (v->host_dev != (uint64_t)hs->st_dev || v->host_ino != (uint64_t)hs->st_ino)
            return 0;
        if ((v->flags & UML_FSTAT_CHECK_CTIME) && uml_ts_ns(&hs->st_ctim) != v->host_ctime_ns)
            return 0;
        if ((v->flags & UML_FSTAT_TMPFS_CTIME) && uml_ts_ns(&hs->st_ctim) != v->host_ctime_ns)
            ctime = uml_ts_ns(&hs->st_ctim);        /* a native write or truncate since */
        if (v->flags & UML_FSTAT_LIVE_DATA) {
            size = hs->st_size;
            blocks = hs->st_blocks;
            atime = uml_ts_ns(&hs->st_atim);
            mtime = uml_ts_ns(&hs->st_mtim);
        }
    }
    memset(out, 0, sizeof *out);
    out->dev = v->dev;
    out->ino = v->ino;
    out->nlink = v->nlink;
    out->mode = v->mode;
    out->uid = v->uid;
    out->gid = v->gid;
    out->rdev = v->rdev;
    out->size = size;
    out->blksize = v->blksize;
    out->blocks = blocks ? blocks : (size + 511) / 512;
    split_ns(atime, &out->atime, &out->atime_ns);
    split_ns(mtime, &out->mtime, &out->mtime_ns);
    split_ns(ctime, &out->ctime, &out->ctime_ns);
    return 1;
}

UML_INTERNAL struct uml_fstat *uml_fd_view(struct uml_ctx *c, int tid, int fd, struct stat *hs) {
    char proc[48];
    if (c->fstats == NULL || fd < 0)
        return NULL;
    snprintf(proc, sizeof proc, "/proc/%d/fd/%d", tid, fd);
    if (stat(proc, hs) != 0)
        return NULL;                /* EBADF and the like: Python words the error */
    struct fstat_slot *s = &c->fstats[slot_of(hs->st_dev, hs->st_ino)];
    if (s->gen != uml_stat_generation(c) || s->view.host_dev != (uint64_t)hs->st_dev
            || s->view.host_ino != (uint64_t)hs->st_ino)
        return NULL;
    return &s->view;
}

/* The guest's struct stat of the object behind (tid, fd); 0 without a view. */
static int stat_of_fd(struct uml_ctx *c, int tid, int fd, struct guest_stat *out) {
    struct stat hs;
    const struct uml_fstat *v = uml_fd_view(c, tid, fd, &hs);
    return v != NULL && uml_stat_from_view(v, &hs, out);
}

UML_INTERNAL void uml_answer(struct uml_ctx *c, const struct seccomp_notif *req, int64_t val,
                             int err) {
    uml_send(c, req->id, val, -err, 0);     /* ENOENT: the task died */
}

/* Reply with a struct stat written at buf, or with err. */
UML_INTERNAL int uml_answer_stat(struct uml_ctx *c, const struct seccomp_notif *req,
                                 uint64_t buf, const void *gs, int err) {
    if (!err && uml_mem_write((int)req->pid, buf, gs, sizeof(struct guest_stat))
                    != (int64_t)sizeof(struct guest_stat))
        return 0;                   /* EFAULT: Python words it */
    uml_answer(c, req, 0, err);
    c->stats.fast_stats++;
    return 1;
}

/* fstat, stat, lstat and newfstatat: 1 when answered. */
static int answer_stat(struct uml_ctx *c, const struct seccomp_notif *req) {
    const __u64 *a = req->data.args;
    int tid = (int)req->pid;
    int dirfd = AT_FDCWD, nofollow = 0, empty_ok = 0;
    uint64_t path, buf;
    struct guest_stat gs;
    int err = 0;
    if (!uml_tab_find(c, (int32_t)tid))
        return 0;
    switch (req->data.nr) {
    case SYS_fstat:
        if (!stat_of_fd(c, tid, (int)a[0], &gs))
            return 0;
        return uml_answer_stat(c, req, a[1], &gs, 0);
    case SYS_stat: case SYS_lstat:
        path = a[0];
        buf = a[1];
        nofollow = req->data.nr == SYS_lstat;
        break;
    default:                        /* newfstatat */
        if (a[3] & ~(uint64_t)AT_NEWFSTATAT_FLAGS)
            return 0;
        dirfd = (int)a[0];
        path = a[1];
        buf = a[2];
        nofollow = (a[3] & AT_SYMLINK_NOFOLLOW_FLAG) != 0;
        empty_ok = (a[3] & AT_EMPTY_PATH_FLAG) != 0;
        break;
    }
    if (c->fstats == NULL && c->paths == NULL)
        return 0;
    char name[UML_PATH_KEY_MAX];
    int64_t len = path ? uml_mem_read_str(tid, path, name, sizeof name) : -EFAULT;
    if (len < 0)
        return 0;                   /* EFAULT, or longer than the cache keeps */
    if (len == 0) {
        if (!empty_ok || !stat_of_fd(c, tid, dirfd, &gs))
            return 0;
    } else if (!uml_stat_path(c, tid, dirfd, name, (size_t)len, nofollow, &gs, &err)) {
        return 0;
    }
    return uml_answer_stat(c, req, buf, &gs, err);
}

/* access, faccessat and faccessat2 of a published path: its ENOENT (ld.so
 * probes /etc/ld.so.preload at every exec), or F_OK of a name that exists.
 * Permission bits need the groups and the mount's read-only flag: Python.
 * 1 when answered. */
static int answer_access(struct uml_ctx *c, const struct seccomp_notif *req) {
    const __u64 *a = req->data.args;
    int tid = (int)req->pid;
    int dirfd = AT_FDCWD, nofollow = 0;
    uint64_t path = a[0];
    uint32_t mode = (uint32_t)a[1];
    if (req->data.nr != SYS_access) {
        dirfd = (int)a[0];
        path = a[1];
        mode = (uint32_t)a[2];
        if (req->data.nr == SYS_faccessat2) {
            if (a[3] & ~(uint64_t)(AT_EACCESS_FLAG | AT_SYMLINK_NOFOLLOW_FLAG))
                return 0;           /* AT_EMPTY_PATH, or an invalid flag */
            nofollow = (a[3] & AT_SYMLINK_NOFOLLOW_FLAG) != 0;
        }
    }
    if ((mode & ~7u) || c->paths == NULL || !uml_tab_find(c, (int32_t)tid))
        return 0;
    char name[UML_PATH_KEY_MAX], key[UML_PATH_KEY_MAX];
    int64_t len = path ? uml_mem_read_str(tid, path, name, sizeof name) : -EFAULT;
    if (len <= 0)
        return 0;                   /* EFAULT, empty, or longer than the cache keeps */
    int key_len = uml_path_key(tid, dirfd, name, (size_t)len, key);
    const struct path_slot *s = key_len < 0 ? NULL
                                : uml_path_slot(c, tid, key, (size_t)key_len, nofollow);
    if (s == NULL || (s->err == 0 && mode != 0))
        return 0;
    uml_answer(c, req, 0, s->err);
    c->stats.fast_stats++;
    return 1;
}

/* getpid and friends, from the per-task table. */
static int answer_ids(struct uml_ctx *c, const struct seccomp_notif *req) {
    int64_t val;
    struct slot *s;
    switch (req->data.nr) {
    case SYS_getpid: case SYS_gettid: case SYS_getppid:
    case SYS_getuid: case SYS_geteuid: case SYS_getgid: case SYS_getegid:
        break;
    default:
        return 0;
    }
    s = uml_tab_find(c, (int32_t)req->pid);
    if (!s)
        return 0;
    switch (req->data.nr) {
    case SYS_getpid: val = s->gtgid; break;
    case SYS_gettid: val = s->gtid; break;
    case SYS_getppid: val = s->gppid; break;
    case SYS_getuid: val = s->uid; break;
    case SYS_geteuid: val = s->euid; break;
    case SYS_getgid: val = s->gid; break;
    default: val = s->egid; break;
    }
    uml_answer(c, req, val, 0);
    c->stats.fast_answers++;
    return 1;
}

int uml_fast_answer(struct uml_ctx *c, const struct seccomp_notif *req) {
    switch (req->data.nr) {
    case SYS_fstat: case SYS_stat: case SYS_lstat: case SYS_newfstatat:
        return answer_stat(c, req);
    case SYS_access: case SYS_faccessat: case SYS_faccessat2:
        return answer_access(c, req);
    case SYS_fchmod: case SYS_fchown: case SYS_utimensat:
        return uml_answer_setattr(c, req);
    case SYS_open: case SYS_openat:
        if (!(req->data.args[req->data.nr == SYS_open ? 1 : 2] & O_CREAT))
            return uml_answer_open(c, req);
        return uml_answer_create(c, req);
    case SYS_creat:
        return uml_answer_create(c, req);
    case SYS_unlink: case SYS_unlinkat:
        return uml_answer_unlink(c, req);
    default:
        return answer_ids(c, req);
    }
}
