/* umlpy accelerator, internal: the per-task table and the context, shared by
 * accel.c (the event loop) and faststops.c (stops answered in C). */
#ifndef UMLPY_ACCEL_INT_H
#define UMLPY_ACCEL_INT_H

#include <linux/seccomp.h>
#include <stdint.h>
#include <sys/types.h>

#include "accel.h"

#define UML_CHILDREN_UNKNOWN 0xFFFFFFFFu   /* slot.children of a multi-threaded process */

struct slot {
    int32_t tid;            /* 0 = empty */
    int32_t gtid, gtgid, gppid;
    uint32_t uid, euid, gid, egid;
    uint32_t fsuid, fsgid;  /* whom file permissions see (fastattr.c) */
    uint32_t ctx;           /* resolution context (statpath.c): 0 = none */
    uint32_t children;      /* its thread group's children not seen reaped, or
                             * UML_CHILDREN_UNKNOWN (threads): faststops.c */
    uint8_t fix;            /* FIX_*: what its next syscall-exit stop needs (faststops.c) */
    uint8_t exec_wait;      /* fastexec.c answered its execve: its exec event is checked */
    uint8_t start_wait;     /* its first stop only resumes it (faststops.c) */
    uint32_t exec_slot, exec_serial;    /* ... against this answer */
    uint64_t exec_dev, exec_ino;        /* ... which named this image */
};

struct uml_ctx {
    int lfd;                /* seccomp listener */
    int sigfd;              /* signalfd for SIGCHLD */
    int fast;
    struct seccomp_notif_sizes sizes;
    struct seccomp_notif *req;
    struct slot *tab;
    uint32_t cap, count;
    struct uml_stats stats;
    int wakefd;             /* readable: uml_next returns UML_EV_INTR (debugger requests) */
    int self_fds;           /* /proc/self/fd: a memfd's reopen walks one name (fastcreate.c) */
    int fast_stops;         /* faststops.c may answer stops (off under gdb, guest ptrace) */
    uint32_t task_limit;    /* past it, a thread's clone goes to Python (EAGAIN) */
    struct fstat_slot *fstats;  /* fastnotif.c: published views, NULL until the first */
    struct path_slot *paths;    /* statpath.c: published path stats, NULL until the first */
    uint64_t path_stamp;        /* statpath.c: answers published so far */
    uint64_t fstat_gen;     /* bumped whenever Python may change attributes */
    uint64_t names_gen;     /* bumped whenever Python may change names or credentials */
    struct create_dir *creates;         /* fastcreate.c: published directories */
    uint32_t create_serial;
    struct uml_create *create_log;      /* fastcreate.c: files Python has not adopted */
    uint32_t create_count;
    struct uml_open_note *open_log;     /* fastopen.c: opens Python has not adopted */
    uint32_t open_count;
    int reap;               /* a SIGCHLD came since the last empty waitpid */
    int rescue;             /* this waitpid follows a poll timeout, not a SIGCHLD */
    int tick;               /* a poll timed out: hand Python an EV_INTR */
    int ticks;              /* Python has timed work: poll at most UML_REAP_MS */
    struct uml_attr_change *attr_log;   /* fastattr.c: changes Python has not adopted */
    uint32_t attr_count;
    int have_children;      /* that waitpid's verdict */
    struct zombie *zombies;     /* faststops.c: dead leaders' guest pids (UML_ZOMBIES) */
    int32_t *reap_log;          /* faststops.c: host pids C saw reaped, for Python */
    uint32_t reap_count;
    struct exec_slot *execs;    /* fastexec.c: published execs, NULL until the first */
    uint32_t exec_serial;
    struct uml_exec_note *exec_log;     /* fastexec.c: execs Python has not adopted */
    uint32_t exec_count;
};

/* Internal to the object: called directly, not through the PLT. */
#define UML_INTERNAL __attribute__((visibility("hidden")))

/* The task's slot, or NULL. */
UML_INTERNAL struct slot *uml_tab_find(struct uml_ctx *c, int32_t tid);

/* keeper.c: a SOCK_SEQPACKET pair in sv and a fork; the pid (0 in the
 * child) or -errno. */
UML_INTERNAL pid_t uml_fork_paired(int sv[2]);

/* faststops.c: handle this stop without Python when it can; 1 if it did. */
UML_INTERNAL int uml_fast_stop(struct uml_ctx *c, struct uml_event *ev);
/* faststops.c: a death about to go to Python; a leader's guest pid stays
 * known to C for its parent's wait4 and SIGCHLD, until a new task takes its
 * host pid. */
UML_INTERNAL void uml_note_death(struct uml_ctx *c, const struct uml_event *ev);
/* faststops.c: host pid `host` names a new task: no dead one's guest pid. */
UML_INTERNAL void uml_forget_zombie(struct uml_ctx *c, int32_t host);
struct zombie { int32_t host, gpid; };
#define UML_ZOMBIES 256         /* direct-mapped by host pid: a collision goes to Python */

/* struct stat as the x86-64 syscall ABI lays it out (144 bytes) */
struct guest_stat {
    uint64_t dev, ino, nlink;
    uint32_t mode, uid, gid, pad0;
    uint64_t rdev;
    int64_t size, blksize, blocks;
    int64_t atime, atime_ns, mtime, mtime_ns, ctime, ctime_ns;
    int64_t reserved[3];
};
_Static_assert(sizeof(struct guest_stat) == 144, "struct stat is 144 bytes on x86-64");
struct stat;
struct timespec;

/* fastnotif.c: a timespec in nanoseconds. */
UML_INTERNAL int64_t uml_ts_ns(const struct timespec *t);
/* fastnotif.c: the published views' generation; a view from another is void. */
UML_INTERNAL uint64_t uml_stat_generation(struct uml_ctx *c);
/* fastnotif.c: the guest's stat from a view (and the host object's stat when
 * the view reads it live, else NULL); 0 when the view does not hold. */
UML_INTERNAL int uml_stat_from_view(const struct uml_fstat *v, const struct stat *hs,
                                    void *guest_stat);
/* fastnotif.c: answer req with the stat gs written at buf, or with errno err. */
UML_INTERNAL int uml_answer_stat(struct uml_ctx *c, const struct seccomp_notif *req,
                                 uint64_t buf, const void *gs, int err);
/* statpath.c: a path stat (tid, dirfd, name) Python published in this
 * generation: 1 with *gs filled or *err set, 0 when Python must walk. */
#define UML_PATH_KEY_MAX 256
/* statpath.c: a directory descriptor's part of a key (NUL, then its host
 * object's st_dev, st_ino and st_ctime in ns) from its host stat */
#define UML_DIR_KEY_PREFIX 25
UML_INTERNAL void uml_dir_key(const struct stat *ds, char *key);
UML_INTERNAL int uml_stat_path(struct uml_ctx *c, int tid, int dirfd, const char *name,
                               size_t len, int nofollow, struct guest_stat *gs, int *err);
/* statpath.c: one published path stat, and how to open it for reading
 * (fastopen.c) when open_dirfd is not -1. */
struct path_slot {
    uint64_t gen;                   /* 0: never filled */
    uint64_t stamp;                 /* when it was filled (c->path_stamp) */
    uint32_t ctx;                   /* the resolution context it answers for */
    int32_t err;                    /* the answer is this errno (ENOENT) */
    int32_t host_fd;                /* the kernel's descriptor to read live fields from, or -1 */
    uint16_t len;
    uint8_t nofollow;
    struct uml_fstat view;
    char name[UML_PATH_KEY_MAX];
    int32_t open_dirfd;             /* -1: no recipe; else openat2/openat's dirfd */
    uint32_t open_resolve;          /* openat2's resolve; 0: plain openat */
    uint32_t open_flags;            /* flags the open adds */
    uint64_t open_dev, open_ino;    /* the host object it must give */
    uint16_t rel_len;
    char rel[UML_PATH_KEY_MAX];
};
/* statpath.c: the key of (dirfd, name) for task tid into key; its length or -1. */
UML_INTERNAL int uml_path_key(int tid, int dirfd, const char *name, size_t len, char *key);
/* statpath.c: the published slot of key for task tid's resolution context,
 * in this generation, or NULL. */
UML_INTERNAL struct path_slot *uml_path_slot(struct uml_ctx *c, int tid, const char *key,
                                             size_t len, int nofollow);
/* statpath.c: the hash of a key (ctx, name, salt) that places it in a table. */
UML_INTERNAL uint32_t uml_key_hash(uint32_t ctx, const char *name, size_t len, int salt);
/* fastexec.c: an execve entry (any: it voids what an earlier one left) and
 * an exec event; 1 when answered. */
UML_INTERNAL int uml_fast_exec_entry(struct uml_ctx *c, struct uml_event *ev);
UML_INTERNAL int uml_fast_exec_event(struct uml_ctx *c, struct uml_event *ev);
/* fastopen.c: open(O_RDONLY) of a path whose stat was published; 1 when answered. */
UML_INTERNAL int uml_answer_open(struct uml_ctx *c, const struct seccomp_notif *req);

/* fastnotif.c: the view of the object behind (tid, fd) published in this
 * generation, with its host stat in *hs; NULL without one. */
UML_INTERNAL struct uml_fstat *uml_fd_view(struct uml_ctx *c, int tid, int fd, struct stat *hs);
/* replies.c: a log of `max` entries of `entry` bytes at *log (made on first
 * use) that has room for one more; 0 when not. */
UML_INTERNAL int uml_log_room(void **log, uint32_t count, size_t entry, uint32_t max);
/* replies.c: move up to max of the *count entries of log to out, in order. */
UML_INTERNAL int uml_log_take(void *log, uint32_t *count, size_t entry, void *out, int max);
/* The logs of fastattr.c, fastcreate.c and fastopen.c hold UML_LOG_MAX
 * entries; at UML_LOG_DRAIN, uml_next hands Python an adopt event. */
#define UML_LOG_MAX 256

/* uml_next's longest sleep before it asks waitpid anyway (ms). */
#define UML_REAP_MS 100
#define UML_LOG_DRAIN (UML_LOG_MAX * 3 / 4)
/* replies.c: a log has reached UML_LOG_DRAIN. */
UML_INTERNAL int uml_logs_filling(struct uml_ctx *c);
/* replies.c: send a reply (safe from any thread: its buffer is its own). */
#define UML_RESP_MAX 64         /* the biggest struct seccomp_notif_resp we send */
UML_INTERNAL int uml_send(struct uml_ctx *c, uint64_t id, int64_t val, int32_t error,
                          uint32_t flags);
/* fastnotif.c: answer req with val or errno err. */
UML_INTERNAL void uml_answer(struct uml_ctx *c, const struct seccomp_notif *req, int64_t val,
                             int err);
/* fastattr.c: fchmod, fchown, futimens of a tmpfs file; 1 when answered. */
UML_INTERNAL int uml_answer_setattr(struct uml_ctx *c, const struct seccomp_notif *req);

/* O_LARGEFILE as a guest may pass it (the host's headers make it 0) */
#define UML_GUEST_O_LARGEFILE 0100000
/* fastcreate.c: open(O_CREAT) of a new name in a published tmpfs
 * directory; 1 when answered. */
UML_INTERNAL int uml_answer_create(struct uml_ctx *c, const struct seccomp_notif *req);
/* fastcreate.c: unlink of a name a published directory lets the task remove. */
UML_INTERNAL int uml_answer_unlink(struct uml_ctx *c, const struct seccomp_notif *req);
/* fastcreate.c: free the published directories. */
UML_INTERNAL void uml_creates_free(struct uml_ctx *c);
/* fastnotif.c: void every published view and path stat, but not the
 * published directories of fastcreate.c (a change C made to a file). */
UML_INTERNAL void uml_views_void(struct uml_ctx *c);

/* fastnotif.c: answer a notification without Python; 1 if it did. */
UML_INTERNAL int uml_fast_answer(struct uml_ctx *c, const struct seccomp_notif *req);
/* fastnotif.c: an event goes to Python (req: the notification, or NULL for a
 * stop); unless it is a call that changes nothing, the views go void. */
UML_INTERNAL void uml_fstat_note_python(struct uml_ctx *c, const struct seccomp_notif *req);
/* fastnotif.c: the same for a ptrace stop going to Python. */
UML_INTERNAL void uml_stop_note_python(struct uml_ctx *c, const struct uml_event *ev);

#endif
