/* umlpy accelerator: ptrace stops answered in C.
 *
 * A fork+exec of a dynamic program costs about twenty kernel events; some of
 * them need nothing Python knows beyond the per-task table:
 *   - set_tid_address runs on the host, and its result becomes the guest tid;
 *   - a new thread's clone (no new namespaces, not CLONE_UNTRACED, under the
 *     task limit) runs on the host, and a positive result becomes the child's
 *     guest pid once Python has mirrored the child (at the fork event, which
 *     comes first). fork, vfork and a process's clone have no entry stop at
 *     all (the seccomp filter lets them run): Python arms the same exit at
 *     their fork event (uml_arm_exit);
 *   - wait4(-1, ...) runs on the host; an exit that returns a child gets
 *     the child's guest pid, and a child it reaped goes in the reap log,
 *     whose guest pids Python frees before its next event;
 *   - a wait4 by a single-threaded process with no children fails with
 *     ECHILD at its entry (a shell's wait4(WNOHANG) after each command).
 *     The slot's count of children is Python's, raised at each fork event
 *     before the parent or the child runs on, and lowered here at a reap C
 *     logs; when it says none, the host's list of the task's children
 *     (/proc/TID/task/TID/children) must say so too, because an orphan
 *     comes to a subreaper at its parent's exit, before Python hears of it;
 *   - a signal about to be delivered shows its sender's (or SIGCHLD's
 *     child's) guest pid in si_pid;
 *   - a new task's first stop, when Python's fork event found nothing to do
 *     there (no CLONE_CHILD_SETTID, no guest tracer) and armed its slot.
 * For the calls, C resumes the entry with PTRACE_SYSCALL and remembers in the
 * slot what the exit needs. A pid C does not know, anything else, or a task
 * someone debugs, goes to Python as before.
 *
 * Guest pids of dead children: Python deletes a task's slot at its death,
 * but its parent's wait4 and SIGCHLD come after (in that order when the
 * parent sleeps in wait4: the reap, then the signal). So a dead leader's
 * guest pid stays in a small table until its host pid is used again, as
 * Linux shows a reaped child's pid in the SIGCHLD that follows. (A ptraced
 * child's death reaches the tracer before its parent can see it.)
 */
#define _GNU_SOURCE
#include "accel.h"
#include "accel_int.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* clone flags that need the kernel's decision (Python refuses or rewrites) */
#define CLONE_UNTRACED_FLAG 0x00800000UL
#define CLONE_NEW_NAMESPACES (0x00020000UL | 0x02000000UL | 0x04000000UL | 0x08000000UL | \
                              0x10000000UL | 0x20000000UL | 0x40000000UL | 0x00000080UL)

/* siginfo_t as x86-64 lays it out: si_code, and si_pid of the senders */
#define SIGINFO_SIZE 128
#define SI_CODE_AT 8
#define SI_PID_AT 16
#define SI_USER_CODE 0
#define SI_QUEUE_CODE (-1)
#define SI_MESGQ_CODE (-3)
#define SI_TKILL_CODE (-6)

void uml_set_fast_stops(struct uml_ctx *c, int enabled) { c->fast_stops = enabled; }
void uml_set_task_limit(struct uml_ctx *c, unsigned int limit) { c->task_limit = limit; }

/* ---- guest pids of dead leaders ---- */

static struct zombie *zombie_of(struct uml_ctx *c, int32_t host) {
    if (!c->zombies)
        return NULL;
    struct zombie *z = &c->zombies[(uint32_t)host % UML_ZOMBIES];
    return z->host == host ? z : NULL;
}

void uml_note_death(struct uml_ctx *c, const struct uml_event *ev) {
    if (ev->kind != UML_EV_EXITED && ev->kind != UML_EV_KILLED)
        return;
    struct slot *s = uml_tab_find(c, ev->tid);
    if (!s || s->gtid != s->gtgid)
        return;
    if (!c->zombies && !(c->zombies = calloc(UML_ZOMBIES, sizeof *c->zombies)))
        return;
    c->zombies[(uint32_t)ev->tid % UML_ZOMBIES] = (struct zombie){ev->tid, s->gtgid};
}

void uml_forget_zombie(struct uml_ctx *c, int32_t host) {
    struct zombie *z = zombie_of(c, host);
    if (z)
        z->host = 0;
}

/* The guest pid of the live process whose host pid is `host`; 0 if unknown. */
static int32_t live_pid(struct uml_ctx *c, int32_t host) {
    struct slot *s = uml_tab_find(c, host);
    return s && s->gtid == s->gtgid ? s->gtgid : 0;
}

/* ...of a live process or a dead one (reaped or not) whose host pid no new
 * task has taken; 0 if unknown. */
static int32_t known_pid(struct uml_ctx *c, int32_t host) {
    int32_t g = live_pid(c, host);
    if (g)
        return g;
    struct zombie *z = zombie_of(c, host);
    return z ? z->gpid : 0;
}

const uint32_t *uml_reap_log_count(struct uml_ctx *c) { return &c->reap_count; }

int uml_reap_log_take(struct uml_ctx *c, int32_t *out, int max) {
    return uml_log_take(c->reap_log, &c->reap_count, sizeof *out, out, max);
}

int uml_arm_start(struct uml_ctx *c, int tid, int on) {
    struct slot *s = uml_tab_find(c, tid);
    if (!s)
        return -ENOENT;
    s->start_wait = on != 0;
    return 0;
}

int uml_start_armed(struct uml_ctx *c, int tid) {
    struct slot *s = uml_tab_find(c, tid);
    return s ? s->start_wait : -ENOENT;
}

int uml_arm_exit(struct uml_ctx *c, int tid, int fix) {
    struct slot *s = uml_tab_find(c, tid);
    if (!s)
        return -ENOENT;
    s->fix = (uint8_t)fix;
    return 0;
}

int uml_resume(struct uml_ctx *c, int tid, int sig) {
    struct slot *s = uml_tab_find(c, tid);
    int req = s && s->fix ? PTRACE_SYSCALL : PTRACE_CONT;
    return ptrace(req, tid, 0, (long)sig) == 0 ? 0 : -errno;
}

static int entry_fix(struct uml_ctx *c, const struct uml_event *ev) {
    switch (ev->nr) {
    case SYS_set_tid_address:
        return UML_FIX_TID;
    case SYS_clone:     /* only a thread's, or flags Python must see, are trapped */
        if (ev->args[0] & (CLONE_NEW_NAMESPACES | CLONE_UNTRACED_FLAG))
            return UML_FIX_NONE;
        return c->count + 1 < c->task_limit ? UML_FIX_FORK : UML_FIX_NONE;
    case SYS_wait4:
        return (int)ev->args[0] == -1 ? UML_FIX_PYEXIT : UML_FIX_NONE;
    default:
        return UML_FIX_NONE;
    }
}

/* wait4's options and pid that Linux refuses before it looks for children */
#define WAIT4_OPTIONS (WNOHANG | WUNTRACED | WCONTINUED | __WNOTHREAD | __WCLONE | __WALL)

/* The host lists no child of thread tid (nor a zombie one). */
static int host_has_no_children(pid_t tid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", tid, tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char first;
    ssize_t n = read(fd, &first, 1);
    close(fd);
    return n == 0;
}

static int childless_wait(const struct slot *s, const struct uml_event *ev) {
    return ev->nr == SYS_wait4 && s->children == 0 && (int32_t)ev->args[0] != INT32_MIN
           && !((uint32_t)ev->args[2] & ~(uint32_t)WAIT4_OPTIONS)      /* an int */
           && host_has_no_children(ev->tid);
}

static int set_rax_and_go(pid_t tid, int64_t value) {
    ptrace(PTRACE_POKEUSER, tid, offsetof(struct user_regs_struct, rax), value);
    ptrace(PTRACE_CONT, tid, 0, 0);     /* ESRCH: it was killed meanwhile */
    return 1;
}

/* wait4's exit with a host pid: the guest pid instead, and a reaped child
 * noted for Python. 0 when Python must see it. */
static int wait4_exit(struct uml_ctx *c, struct uml_event *ev) {
    int32_t host = (int32_t)ev->ret;
    int dead;
    uint64_t status_ptr = ev->args[1];
    if (status_ptr) {
        int32_t status;
        if (uml_mem_read(ev->tid, status_ptr, &status, sizeof status) != sizeof status)
            return 0;
        dead = (status & 0x7f) != 0x7f && status != 0xffff;    /* not stopped or continued */
    } else {
        dead = !(ev->args[2] & (WUNTRACED | WCONTINUED));
    }
    int32_t g;
    if (dead) {     /* only a zombie: a live slot would mean its death is still unseen */
        struct zombie *z = zombie_of(c, host);
        if (!z || live_pid(c, host)
                || !uml_log_room((void **)&c->reap_log, c->reap_count, sizeof *c->reap_log,
                                 UML_LOG_MAX))
            return 0;
        g = z->gpid;    /* kept: the SIGCHLD that follows shows it too */
        c->reap_log[c->reap_count] = host;
        __atomic_store_n(&c->reap_count, c->reap_count + 1, __ATOMIC_RELEASE);
        struct slot *s = uml_tab_find(c, ev->tid);
        if (s && s->children > 0 && s->children != UML_CHILDREN_UNKNOWN)
            s->children--;      /* (Python's count follows when it takes the log) */
    } else if (!(g = live_pid(c, host))) {
        return 0;
    }
    return set_rax_and_go(ev->tid, g);
}

/* A signal-delivery stop: si_pid as the guest knows the sender; 0 when
 * Python must see it. */
static int signal_stop(struct uml_ctx *c, struct uml_event *ev) {
    struct slot *s = uml_tab_find(c, ev->tid);
    if (!s)
        return 0;
    unsigned char info[SIGINFO_SIZE];
    if (ptrace(PTRACE_GETSIGINFO, ev->tid, 0, info) != 0)
        return 0;
    int32_t code, pid;
    memcpy(&code, info + SI_CODE_AT, sizeof code);
    memcpy(&pid, info + SI_PID_AT, sizeof pid);
    if (ev->sig == SIGCHLD || code == SI_USER_CODE || code == SI_QUEUE_CODE
            || code == SI_MESGQ_CODE || code == SI_TKILL_CODE) {
        int32_t g = 0;      /* a sender outside the guest shows as 0, as Linux does */
        if (pid > 0 && !(g = known_pid(c, pid)))
            return 0;       /* maybe outside: Python knows */
        if (g != pid) {
            memcpy(info + SI_PID_AT, &g, sizeof g);
            if (ptrace(PTRACE_SETSIGINFO, ev->tid, 0, info) != 0)
                return 0;
        }
    }
    ptrace(s->fix ? PTRACE_SYSCALL : PTRACE_CONT, ev->tid, 0, (long)ev->sig);
    return 1;
}

static int on_exit_stop(struct uml_ctx *c, struct slot *s, struct uml_event *ev) {
    int fix = s->fix;
    s->fix = UML_FIX_NONE;
    int64_t ret = ev->ret;
    switch (fix) {
    case UML_FIX_TID:
        return set_rax_and_go(ev->tid, s->gtid);
    case UML_FIX_FORK: {
        if (!c->fast_stops)
            break;          /* (Python armed it at the fork event: Python answers) */
        if (ret <= 0) {     /* an error, or a restart: as the host said */
            ptrace(PTRACE_CONT, ev->tid, 0, 0);
            return 1;
        }
        struct slot *child = uml_tab_find(c, (int32_t)ret);
        if (child)
            return set_rax_and_go(ev->tid, child->gtid);
        break;              /* the child is gone already: Python knows its pid */
    }
    case UML_FIX_PYEXIT:
        /* wait4 found no child (ECHILD, WNOHANG's 0, EINTR): no host pid to
         * show, none reaped. Python still sees it when someone debugs. */
        if (ret <= 0 && c->fast_stops) {
            ptrace(PTRACE_CONT, ev->tid, 0, 0);
            return 1;
        }
        if (ret > 0 && c->fast_stops && wait4_exit(c, ev))
            return 1;
        break;
    default:
        break;
    }
    ev->fix = fix;
    return 0;
}

int uml_fast_stop(struct uml_ctx *c, struct uml_event *ev) {
    if (ev->kind == UML_EV_EXEC || (ev->kind == UML_EV_SECCOMP
                                    && (ev->nr == SYS_execve || ev->nr == SYS_execveat))) {
        /* (called whatever the switches: an execve Python takes voids C's last) */
        int done = ev->kind == UML_EV_EXEC ? uml_fast_exec_event(c, ev)
                                           : uml_fast_exec_entry(c, ev);
        if (done)
            c->stats.c_stops++;
        return done;
    }
    if (ev->kind == UML_EV_TRAPSTOP && c->fast && c->fast_stops) {
        /* a new task's first stop, which Python armed (its fork event came first) */
        struct slot *s = uml_tab_find(c, ev->tid);
        if (!s || !s->start_wait)
            return 0;
        s->start_wait = 0;
        ptrace(PTRACE_CONT, ev->tid, 0, 0);     /* ESRCH: killed meanwhile, its death follows */
        c->stats.c_stops++;
        c->stats.fast_starts++;
        return 1;
    }
    if (ev->kind == UML_EV_SIGNAL && c->fast && c->fast_stops) {
        if (!signal_stop(c, ev))
            return 0;
        c->stats.c_stops++;
        return 1;
    }
    if (!ev->regs_ok)
        return 0;
    if (ev->kind == UML_EV_SECCOMP && c->fast && c->fast_stops) {
        struct slot *s = uml_tab_find(c, ev->tid);
        if (s && childless_wait(s, ev)) {
            if (uml_skip(ev->tid, -ECHILD) != 0)
                return 0;   /* let Python see what became of it */
            c->stats.c_stops++;
            c->stats.childless_waits++;
            return 1;
        }
        int fix = entry_fix(c, ev);
        if (fix == UML_FIX_NONE || !s)
            return 0;
        s->fix = (uint8_t)fix;
        if (ptrace(PTRACE_SYSCALL, ev->tid, 0, 0) != 0) {
            s->fix = UML_FIX_NONE;
            return 0;       /* let Python see what became of it */
        }
        c->stats.c_stops++;
        return 1;
    }
    if (ev->kind == UML_EV_SYSEXIT) {
        /* even when fast stops were turned off since: the entry was ours */
        struct slot *s = uml_tab_find(c, ev->tid);
        if (!s || !s->fix)
            return 0;
        if (on_exit_stop(c, s, ev)) {
            c->stats.c_stops++;
            return 1;
        }
    }
    return 0;
}
