/* umlpy accelerator: fchmod, fchown and futimens of a tmpfs file answered in C.
 *
 * tar x, cp -p and package installs set each new file's times, owner and
 * mode through its descriptor: three calls per file, each decided from the
 * file's owner and mode and the caller's fsuid alone. When the kernel in
 * Python published the file's view with UML_FSTAT_SETATTR (a tmpfs file
 * that no read-only mount reaches), C decides the common cases as the kernel
 * would and leaves every other one (any error, a caller who is neither owner
 * nor root, setgid outside the caller's own group) to the kernel:
 *  - futimens sets the times of the host object itself through the kernel's
 *    own descriptor of it: tmpfs keeps a file's times in its memfd, and the
 *    host moves the memfd's ctime, which views and the kernel read from it.
 *  - fchmod and fchown change C's view of the file and log the change; the
 *    kernel adopts the log before it handles its next event
 *    (uml_attr_log_take). They void every other published answer, which may
 *    hold a copy of the old mode or owner (a path's stat).
 */
#define _GNU_SOURCE
#include "accel.h"
#include "accel_int.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>

#define NSEC_PER_SEC 1000000000LL

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * NSEC_PER_SEC + t.tv_nsec;
}

/* The owner, or root (CAP_FOWNER): who may chmod and set explicit times. */
static int is_owner(const struct slot *s, const struct uml_fstat *v) {
    return s->fsuid == 0 || s->fsuid == v->uid;
}

static int log_has_room(struct uml_ctx *c) {
    return uml_log_room((void **)&c->attr_log, c->attr_count, sizeof *c->attr_log, UML_LOG_MAX);
}

/* v (the view behind hs) takes mode, uid and gid, with ctime now: log it for
 * Python and void every other published answer. */
static void change_view(struct uml_ctx *c, struct uml_fstat *v, const struct stat *hs,
                        uint32_t mode, uint32_t uid, uint32_t gid) {
    struct uml_fstat nv = *v;
    nv.mode = mode;
    nv.uid = uid;
    nv.gid = gid;
    nv.ctime_ns = now_ns();
    nv.host_ctime_ns = uml_ts_ns(&hs->st_ctim);     /* a native write after this moves it */
    struct uml_attr_change *e = &c->attr_log[c->attr_count];
    memset(e, 0, sizeof *e);
    e->host_dev = nv.host_dev;
    e->host_ino = nv.host_ino;
    e->mode = mode;
    e->uid = uid;
    e->gid = gid;
    e->ctime_ns = nv.ctime_ns;
    e->host_ctime_ns = nv.host_ctime_ns;
    __atomic_store_n(&c->attr_count, c->attr_count + 1, __ATOMIC_RELEASE);
    uml_views_void(c);              /* a directory's permissions are not among them */
    uml_fstat_publish(c, &nv);
}

static int do_fchmod(struct uml_ctx *c, const struct slot *s, struct uml_fstat *v,
                     const struct stat *hs, uint32_t mode) {
    mode &= 07777;
    if (!is_owner(s, v))
        return 0;                   /* EPERM */
    if (s->fsuid != 0 && (mode & S_ISGID) && s->fsgid != v->gid)
        return 0;                   /* setgid stays only in the caller's groups: the kernel knows them */
    change_view(c, v, hs, (v->mode & S_IFMT) | mode, v->uid, v->gid);
    return 1;
}

static int do_fchown(struct uml_ctx *c, const struct slot *s, struct uml_fstat *v,
                     const struct stat *hs, uint32_t uid, uint32_t gid) {
    if (s->fsuid != 0)
        return 0;                   /* an owner giving his file to one of his groups: the kernel */
    /* even chown(-1, -1): setuid goes, and setgid of a group-executable file */
    uint32_t mode = v->mode & ~(uint32_t)S_ISUID;
    if (mode & S_IXGRP)
        mode &= ~(uint32_t)S_ISGID;
    change_view(c, v, hs, mode, uid == (uint32_t)-1 ? v->uid : uid,
                gid == (uint32_t)-1 ? v->gid : gid);
    return 1;
}

/* utimensat(fd, NULL, times, 0): 1 when done. */
static int do_futimens(struct uml_ctx *c, int tid, const struct slot *s,
                       const struct uml_fstat *v, uint64_t times) {
    struct timespec ts[2];
    int omit = 0;
    if (times) {
        if (uml_mem_read(tid, times, ts, sizeof ts) != (int64_t)sizeof ts)
            return 0;               /* EFAULT */
        for (int i = 0; i < 2; i++) {
            if (ts[i].tv_nsec == UTIME_OMIT)
                omit++;
            else if (ts[i].tv_nsec != UTIME_NOW && (ts[i].tv_nsec < 0
                                                     || ts[i].tv_nsec >= NSEC_PER_SEC))
                return 0;           /* EINVAL */
        }
        if (omit == 2)
            return 1;               /* nothing to set, nothing to check */
    }
    if (!is_owner(s, v))
        return 0;   /* explicit times: EPERM; "now": write permission, which the kernel checks */
    struct stat ks;
    if (v->host_fd < 0 || fstat((int)v->host_fd, &ks) != 0
            || (uint64_t)ks.st_dev != v->host_dev || (uint64_t)ks.st_ino != v->host_ino)
        return 0;                   /* the kernel's descriptor is not that object (any more) */
    return futimens((int)v->host_fd, times ? ts : NULL) == 0;
}

UML_INTERNAL int uml_answer_setattr(struct uml_ctx *c, const struct seccomp_notif *req) {
    const __u64 *a = req->data.args;
    int tid = (int)req->pid;
    const struct slot *s = uml_tab_find(c, (int32_t)tid);
    if (!s)
        return 0;
    if (req->data.nr == SYS_utimensat && (a[1] != 0 || a[3] != 0))
        return 0;                   /* a path, or flags: the kernel walks */
    struct stat hs;
    struct uml_fstat *v = uml_fd_view(c, tid, (int)a[0], &hs);
    if (!v || !(v->flags & UML_FSTAT_SETATTR) || !S_ISREG(v->mode))
        return 0;
    int done;
    switch (req->data.nr) {
    case SYS_fchmod:
        done = log_has_room(c) && do_fchmod(c, s, v, &hs, (uint32_t)a[1]);
        break;
    case SYS_fchown:
        done = log_has_room(c) && do_fchown(c, s, v, &hs, (uint32_t)a[1], (uint32_t)a[2]);
        break;
    default:
        done = do_futimens(c, tid, s, v, a[2]);
        break;
    }
    if (!done)
        return 0;
    uml_answer(c, req, 0, 0);
    c->stats.fast_attrs++;
    return 1;
}

const uint32_t *uml_attr_log_count(struct uml_ctx *c) {
    return &c->attr_count;
}

int uml_attr_log_take(struct uml_ctx *c, struct uml_attr_change *out, int max) {
    return uml_log_take(c->attr_log, &c->attr_count, sizeof *out, out, max);
}
