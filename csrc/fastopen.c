/* umlpy accelerator: open for reading answered in C.
 *
 * Programs stat a path, then open it (Python's imports, make, tar c after its
 * fstatat from a directory descriptor), or probe paths that do not exist
 * (ld.so's search). When the kernel in Python publishes a path's stat
 * (statpath.c) for a regular file the task may read, it says how the file is
 * opened: a host file below a hostfs root (openat2, confined), or a tmpfs
 * file's memfd (reopened through /proc/self/fd). An open(O_RDONLY) of that
 * path by a task of the same resolution context (statpath.c) is then made
 * here: the host object opened, checked to be the one published (a host file
 * replaced behind the kernel goes to Python), installed in the guest (ADDFD),
 * its view published for fstat, and a note logged for the kernel to adopt
 * before its next event (the descriptor's place in the guest's namespace:
 * umlpy.vfs.handles). A published ENOENT is
 * given as is. Anything else (writing, O_CREAT, O_TRUNC, O_NOATIME, O_PATH,
 * O_DIRECTORY, a full log, any error) goes to Python.
 */
#define _GNU_SOURCE
#include "accel.h"
#include "accel_int.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* what an open answered here may ask: read-only, and nothing else that matters */
#define OPEN_FLAGS (O_NOCTTY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC | UML_GUEST_O_LARGEFILE)

static int log_has_room(struct uml_ctx *c) {
    return uml_log_room((void **)&c->open_log, c->open_count, sizeof *c->open_log, UML_LOG_MAX);
}

/* The slot that decides an open of key: the name itself when it is a
 * regular file or missing, else (following a last symlink) the followed one. */
static struct path_slot *deciding_slot(struct uml_ctx *c, int tid, const char *key, size_t len,
                                       int nofollow) {
    struct path_slot *s = uml_path_slot(c, tid, key, len, 1);
    if (s && (s->err == ENOENT || (!s->err && S_ISREG(s->view.mode))))
        return s;
    if (nofollow)
        return NULL;                /* a symbolic link: ELOOP, Python words it */
    s = uml_path_slot(c, tid, key, len, 0);
    if (s && (s->err == ENOENT || (!s->err && S_ISREG(s->view.mode))))
        return s;
    return NULL;
}

/* Open s's host object as the guest asked; the descriptor or -1. */
static int open_host(const struct path_slot *s, uint64_t flags) {
    int hflags = O_RDONLY | O_CLOEXEC | O_NOCTTY | (int)s->open_flags | (int)(flags & O_NONBLOCK);
    int fd;
    if (s->open_resolve) {
        struct open_how how;
        memset(&how, 0, sizeof how);
        how.flags = (uint64_t)hflags;
        how.resolve = s->open_resolve;
        fd = (int)syscall(SYS_openat2, s->open_dirfd, s->rel, &how, sizeof how);
    } else {
        fd = openat(s->open_dirfd, s->rel, hflags);
    }
    if (fd < 0)
        return -1;
    struct stat hs;
    if (fstat(fd, &hs) != 0 || (uint64_t)hs.st_dev != s->open_dev
            || (uint64_t)hs.st_ino != s->open_ino) {
        close(fd);                  /* not what was published: the kernel looks again */
        return -1;
    }
    return fd;
}

UML_INTERNAL int uml_answer_open(struct uml_ctx *c, const struct seccomp_notif *req) {
    const __u64 *a = req->data.args;
    int tid = (int)req->pid;
    int dirfd = AT_FDCWD;
    uint64_t path, flags;
    if (req->data.nr == SYS_open) {
        path = a[0], flags = a[1];
    } else {                        /* openat */
        dirfd = (int)a[0], path = a[1], flags = a[2];
    }
    if ((flags & O_ACCMODE) != O_RDONLY || (flags & ~(uint64_t)OPEN_FLAGS) || c->paths == NULL
            || !uml_tab_find(c, (int32_t)tid))
        return 0;
    char name[UML_PATH_KEY_MAX], key[UML_PATH_KEY_MAX];
    int64_t len = uml_mem_read_str(tid, path, name, sizeof name);
    if (len <= 0)
        return 0;                   /* EFAULT, ENOENT of "", or longer than a key */
    int key_len = uml_path_key(tid, dirfd, name, (size_t)len, key);
    if (key_len < 0)
        return 0;
    const struct path_slot *s = deciding_slot(c, tid, key, (size_t)key_len,
                                              (flags & O_NOFOLLOW) != 0);
    if (s == NULL)
        return 0;
    if (s->err) {
        uml_answer(c, req, 0, s->err);
        c->stats.fast_opens++;
        return 1;
    }
    if (s->open_dirfd == -1 || !log_has_room(c))
        return 0;
    int fd = open_host(s, flags);
    if (fd < 0)
        return 0;
    int r = uml_notif_addfd(c, req->id, fd, (unsigned)(flags & O_CLOEXEC));
    close(fd);
    if (r < 0)
        return r == -ENOENT;        /* gone, or interrupted (it comes again); EMFILE: Python */
    struct uml_fstat v = s->view;   /* what its fstat shows (fchmod and the like: Python) */
    v.host_dev = s->open_dev;
    v.host_ino = s->open_ino;
    v.host_fd = s->host_fd;
    v.flags &= ~(uint32_t)UML_FSTAT_SETATTR;
    uml_fstat_publish(c, &v);
    struct uml_open_note *e = &c->open_log[c->open_count];
    e->slot = (uint32_t)(s - c->paths);
    e->pad = 0;
    e->host_dev = s->open_dev;
    e->host_ino = s->open_ino;
    __atomic_store_n(&c->open_count, c->open_count + 1, __ATOMIC_RELEASE);
    c->stats.fast_opens++;
    return 1;
}

const uint32_t *uml_open_log_count(struct uml_ctx *c) {
    return &c->open_count;
}

int uml_open_log_take(struct uml_ctx *c, struct uml_open_note *out, int max) {
    return uml_log_take(c->open_log, &c->open_count, sizeof *out, out, max);
}
