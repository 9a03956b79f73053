/* umlpy accelerator: the ptrace + seccomp hot loop, guest memory and registers.
 *
 * Python decides, C moves: this file waits for guest stops, decodes them,
 * answers the cheapest syscalls from a per-task table mirrored from Python,
 * and hands everything else to the kernel in Python as a uml_event.
 */
#ifndef UMLPY_ACCEL_H
#define UMLPY_ACCEL_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

enum uml_event_kind {
    UML_EV_NONE = 0,        /* no tracee and no notifier left */
    UML_EV_NOTIF = 1,       /* seccomp user notification for Python */
    UML_EV_SECCOMP = 2,     /* ptrace seccomp stop (SECCOMP_RET_TRACE) */
    UML_EV_SYSEXIT = 3,     /* syscall-exit stop after PTRACE_SYSCALL */
    UML_EV_FORK = 4,
    UML_EV_VFORK = 5,
    UML_EV_CLONE = 6,
    UML_EV_EXEC = 7,
    UML_EV_SIGNAL = 8,      /* signal-delivery-stop */
    UML_EV_GROUPSTOP = 9,   /* PTRACE_EVENT_STOP for a stopping signal */
    UML_EV_TRAPSTOP = 10,   /* PTRACE_EVENT_STOP with SIGTRAP: new task or interrupt */
    UML_EV_EXITED = 11,
    UML_EV_KILLED = 12,
    UML_EV_INTR = 13,       /* the wait was interrupted by a signal to umlpy */
    UML_EV_ADOPT = 14,      /* nothing happened, but C's logs are filling: adopt them */
};

struct uml_event {
    int kind;
    int tid;                /* host tid */
    int status;             /* raw wait status */
    int sig;
    int64_t nr;
    uint64_t args[6];
    int64_t ret;            /* rax at syscall exit, exit code for EXITED */
    uint64_t msg;           /* PTRACE_GETEVENTMSG */
    uint64_t notif_id;
    uint64_t ip;
    uint64_t sp;
    int regs_ok;            /* registers were read for this stop */
    int fix;                /* SYSEXIT of a call whose entry C answered: UML_FIX_* */
};

struct uml_stats {
    uint64_t fast_answers;
    uint64_t notifs;
    uint64_t ptrace_stops;
    uint64_t c_stops;       /* ptrace stops answered in C (faststops.c) */
    uint64_t fast_stats;    /* stat, lstat, fstat, newfstatat, access answered in C (fastnotif.c) */
    uint64_t fast_attrs;    /* fchmod, fchown, futimens answered in C (fastattr.c) */
    uint64_t fast_creates;  /* open(O_CREAT) of a new tmpfs file answered in C (fastcreate.c) */
    uint64_t fast_opens;    /* open(O_RDONLY) of a published path answered in C (fastopen.c) */
    uint64_t fast_unlinks;  /* unlink of a tmpfs name answered in C (fastcreate.c) */
    uint64_t lost_wakeups;  /* stops found by the periodic wait, not by their SIGCHLD */
    uint64_t fast_execs;    /* execve entries answered in C (fastexec.c) */
    uint64_t fast_starts;   /* new tasks' first stops resumed in C (faststops.c) */
    uint64_t childless_waits;   /* wait4s answered ECHILD at their entry (faststops.c) */
};

struct uml_ctx;

struct uml_ctx *uml_new(void);
void uml_free(struct uml_ctx *c);
int uml_listener_fd(struct uml_ctx *c);
void uml_get_stats(struct uml_ctx *c, struct uml_stats *out);
void uml_set_fast(struct uml_ctx *c, int enabled);

/* filter: array of struct sock_filter (8 bytes each). Returns host pid or -errno. */
int uml_spawn(struct uml_ctx *c, const char *path, char *const argv[], char *const envp[],
              const void *filter, unsigned int filter_len, int console_fd,
              int userns_fd, int netns_fd);
/* The keeper (keeper.c): a child as unprivileged as the guests that holds
 * their exec images (and under UML_KEEPER_NETNS makes a network namespace of
 * its own, in a user namespace of one uid when not root). Returns its pid and,
 * in *sock_out, its request socket: int[4] {op, a, b, c}; SOCKET (a, b, c =
 * family, type, protocol) is answered with SCM_RIGHTS or an errno word, KEEP
 * (an fd passed along) with the fd number it got there, DROP (a = that number)
 * with 0 or -errno. Or returns -errno. */
enum { UML_KEEPER_NETNS = 1 };
enum { UML_KEEPER_SOCKET = 1, UML_KEEPER_KEEP = 2, UML_KEEPER_DROP = 3 };
int uml_keeper(int flags, int *sock_out);
/* Drop every capability, the bounding set and ambient ones; lock securebits
 * so root regains nothing at exec. Returns 0 or errno. */
int uml_drop_caps(void);

int uml_next(struct uml_ctx *c, struct uml_event *ev);

/* Stops answered in C (faststops.c): set_tid_address, and the entries of
 * a thread's clone and wait4(-1) with their exits where the table suffices.
 * A SYSEXIT whose entry C took reaches Python with ev->fix set. */
enum { UML_FIX_NONE = 0, UML_FIX_TID = 1, UML_FIX_FORK = 2, UML_FIX_PYEXIT = 3 };
void uml_set_fast_stops(struct uml_ctx *c, int enabled);
/* Host pids of children whose reaping wait4 C answered (faststops.c): the
 * kernel frees their guest pids before its next event. */
const uint32_t *uml_reap_log_count(struct uml_ctx *c);
int uml_reap_log_take(struct uml_ctx *c, int32_t *out, int max);
void uml_set_task_limit(struct uml_ctx *c, unsigned int limit);
void uml_set_ticks(struct uml_ctx *c, int on);
/* A new task whose first stop needs nothing but resuming (no CLONE_CHILD_SETTID,
 * no guest tracer): C resumes it there while fast stops are on (on = 1), or not
 * (on = 0). uml_start_armed: 1 while that first stop has not come (or came when
 * C could not take it), 0 once C took it, -ENOENT for an unknown task. */
int uml_arm_start(struct uml_ctx *c, int tid, int on);
int uml_start_armed(struct uml_ctx *c, int tid);
/* Resume a stopped task: PTRACE_SYSCALL when C owes it an exit stop, else CONT. */
/* The task's next syscall-exit stop needs fix (UML_FIX_*): a fork whose entry
 * ran without a stop, armed at its fork event. 0, or -ENOENT. */
int uml_arm_exit(struct uml_ctx *c, int tid, int fix);
int uml_resume(struct uml_ctx *c, int tid, int sig);

/* fstat answered in C (fastnotif.c): the guest's view of a host object,
 * published by Python, valid until Python next handles a call that may change
 * attributes (uml_fstat_forget does that by hand). flags: */
enum {
    UML_FSTAT_CHECK_CTIME = 1,  /* void once the host object's ctime is not host_ctime_ns */
    UML_FSTAT_LIVE_DATA = 2,    /* size, blocks, atime and mtime from the host object */
    UML_FSTAT_TMPFS_CTIME = 4,  /* ctime: the host's when not host_ctime_ns, else ctime_ns */
    UML_FSTAT_SETATTR = 8,      /* fchmod, fchown and futimens may be answered (fastattr.c) */
};
struct uml_fstat {
    uint64_t host_dev, host_ino;
    int64_t host_ctime_ns;
    uint32_t flags;
    uint32_t mode, uid, gid;
    uint64_t dev, ino, nlink, rdev;
    int64_t size, blksize, blocks;
    int64_t atime_ns, mtime_ns, ctime_ns;
    int64_t host_fd;            /* SETATTR: the kernel's descriptor of the host object */
};
int uml_fstat_publish(struct uml_ctx *c, const struct uml_fstat *view);
void uml_fstat_forget(struct uml_ctx *c);
/* fchmod and fchown answered in C (fastattr.c) change only C's view; they are
 * logged for the kernel in Python to adopt before it handles the next event.
 * uml_attr_log_count points at how many wait; uml_attr_log_take moves up to
 * max of them to out and returns how many. */
struct uml_attr_change {
    uint64_t host_dev, host_ino;
    uint32_t mode, uid, gid, pad;
    int64_t ctime_ns;           /* the new ctime ... */
    int64_t host_ctime_ns;      /* ... which holds while the host object's ctime is this */
};
const uint32_t *uml_attr_log_count(struct uml_ctx *c);
int uml_attr_log_take(struct uml_ctx *c, struct uml_attr_change *out, int max);
/* A new tmpfs file made in C (fastcreate.c). uml_create_publish: task tid
 * may create files in the directory its path text `key` (statpath.c's key
 * of the path up to its last '/') names, owned by uid and gid, with the
 * umask, the guest st_dev, the next inode number and the inodes left; names
 * holds the directory's name_count names, each ended by a NUL, and
 * removable[i] is 1 when the task may unlink the i-th (C may then unlink it;
 * files it makes it may too). Returns the directory's slot or -errno. The
 * files made and the names removed are logged, in order, for the kernel to
 * adopt before it handles its next event, as the attribute changes are. */
int uml_create_publish(struct uml_ctx *c, int tid, const char *key, size_t key_len,
                       uint32_t uid, uint32_t gid, uint32_t umask, uint64_t dev,
                       uint64_t next_ino, uint64_t inodes_left,
                       const char *names, size_t names_len, uint32_t name_count,
                       const uint8_t *removable);
struct uml_create {
    uint32_t slot, serial;      /* the published directory it was made in */
    uint64_t ino;
    uint64_t host_dev, host_ino;
    int64_t host_fd;            /* the memfd, now the kernel's */
    uint32_t mode, uid, gid, name_len;
    uint32_t removed, pad;      /* 1: the name was unlinked (only name and time_ns hold) */
    int64_t time_ns;            /* its atime, mtime, ctime and birth, and the memfd's ctime */
    char name[256];
};
uint32_t uml_create_serial(struct uml_ctx *c, int slot);
const uint32_t *uml_create_log_count(struct uml_ctx *c);
int uml_create_log_take(struct uml_ctx *c, struct uml_create *out, int max);
/* stat of a path answered in C (statpath.c): task tid's stat of `name`
 * (absolute or from its cwd) is errno err, or view (read live from the
 * kernel's descriptor host_fd when it is not -1), while the views hold.
 * Returns its slot or -errno. */
int uml_path_publish(struct uml_ctx *c, int tid, const char *name, size_t len, int nofollow,
                     int err, int host_fd, const struct uml_fstat *view);
/* How task tid opens the path of published slot `slot` (what uml_path_publish
 * returned) for reading (fastopen.c): openat2(dirfd, rel, resolve) when
 * resolve is not 0, else openat(dirfd, rel), adding extra_flags; it must give
 * host object (dev, ino). Each open made is noted for the kernel to adopt
 * (which path the descriptor was opened by) before its next event. */
int uml_path_open_recipe(struct uml_ctx *c, int slot, int dirfd, const char *rel, size_t rel_len,
                         uint32_t resolve, uint32_t extra_flags, uint64_t dev, uint64_t ino);
struct uml_open_note {
    uint32_t slot, pad;
    uint64_t host_dev, host_ino;
};
const uint32_t *uml_open_log_count(struct uml_ctx *c);
int uml_open_log_take(struct uml_ctx *c, struct uml_open_note *out, int max);

/* execve answered in C (fastexec.c). uml_exec_publish: task tid's execve of
 * `name` (its text, from its cwd) runs the image at host_path, whose host
 * object is (image_dev, image_ino), while the views hold (uml_fstat_forget)
 * and each check's file (the program, then its ld.so) is that version: its
 * fd is the kernel's descriptor of it, kept open while published. host_interp,
 * when not empty: the host's own ld.so at that path must be checks[1]'s
 * version too. Returns the slot, with its serial in *serial, or -errno; the
 * slot's earlier answer (and its descriptors) is replaced. uml_exec_void
 * drops every answer (an image is gone). Each execve answered, and each exec
 * event after it checked, is logged for the kernel to adopt before its next
 * event (done: 0 for the entry, 1 for the event). */
#define UML_EXEC_PATH_MAX 512
struct uml_exec_check {
    int64_t fd;
    uint64_t dev, ino;
    int64_t size, mtime_ns, ctime_ns;
};
int uml_exec_publish(struct uml_ctx *c, int tid, const char *name, size_t len,
                     const char *host_path, size_t host_len, uint64_t image_dev,
                     uint64_t image_ino, const struct uml_exec_check *checks, int nchecks,
                     const char *host_interp, size_t interp_len, uint32_t *serial);
void uml_exec_void(struct uml_ctx *c);
struct uml_exec_note { int32_t tid; uint32_t slot, serial, done; };
const uint32_t *uml_exec_log_count(struct uml_ctx *c);
int uml_exec_log_take(struct uml_ctx *c, struct uml_exec_note *out, int max);

/* Resuming a ptrace-stopped tracee. */
int uml_cont(int tid, int sig);
int uml_syscall(int tid, int sig);
int uml_listen(int tid);
int uml_interrupt(int tid);
int uml_skip(int tid, int64_t retval);          /* at a seccomp stop: skip with retval, continue */
int uml_get_regs(int tid, struct user_regs_struct *regs);
int uml_set_regs(int tid, const struct user_regs_struct *regs);
int uml_set_rax(int tid, int64_t value);
/* A ptrace-stopped task's syscall: under UML_SET_NR its number (orig_rax),
 * under UML_SET_RAX its result, and always its six arguments; one GETREGS
 * and one SETREGS. */
enum { UML_SET_NR = 1, UML_SET_RAX = 2 };
int uml_set_syscall(int tid, int which, uint64_t nr, uint64_t rax, uint64_t a0, uint64_t a1,
                    uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5);
int uml_get_siginfo(int tid, void *buf128);
int uml_set_siginfo(int tid, const void *buf128);

/* Seccomp user notification replies. */
int uml_notif_reply(struct uml_ctx *c, uint64_t id, int64_t val, int err);
int uml_notif_continue(struct uml_ctx *c, uint64_t id);
int uml_notif_addfd(struct uml_ctx *c, uint64_t id, int srcfd, unsigned int newfd_flags);
int uml_notif_valid(struct uml_ctx *c, uint64_t id);

/* Guest memory. Return bytes moved or -errno. */
int64_t uml_mem_read(int pid, uint64_t addr, void *buf, uint64_t len);
int64_t uml_mem_write(int pid, uint64_t addr, const void *buf, uint64_t len);
int64_t uml_mem_read_str(int pid, uint64_t addr, char *buf, uint64_t max);

/* The per-task table behind the fast path. */
int uml_task_set(struct uml_ctx *c, int tid, int gtid, int gtgid, int gppid,
                 unsigned int uid, unsigned int euid, unsigned int gid, unsigned int egid,
                 unsigned int fsuid, unsigned int fsgid, unsigned int ctx,
                 unsigned int children);
int uml_task_del(struct uml_ctx *c, int tid);
/* Its thread group's count of children (uml_task_set's children) alone. */
int uml_task_children(struct uml_ctx *c, int tid, unsigned int children);

/* Debugging: a wake-up eventfd for uml_next (returns UML_EV_INTR), single-step. */
void uml_set_wake_fd(struct uml_ctx *c, int fd);
int uml_singlestep(int tid, int sig);

/* Guest ptrace (ptrace_guest.c): one raw ptrace request on a guest's host
 * tid, for requests the kernel has already checked; returns r or -errno. */
int64_t uml_pt_raw(int req, int tid, uint64_t addr, uint64_t data);

#endif
