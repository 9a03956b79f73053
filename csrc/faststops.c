/* umlpy accelerator: ptrace stops answered in C.
 *
 * A fork+exec of a dynamic program costs about twenty kernel events; some of
 * them need nothing Python knows beyond the per-task table:
 *   - set_tid_address runs on the host, and its result becomes the guest tid;
 *   - fork, vfork and clone (no new namespaces, not CLONE_UNTRACED, under the
 *     task limit) run on the host, and a positive result becomes the child's
 *     guest pid once Python has mirrored the child (at the fork event, which
 *     comes first);
 *   - wait4(-1, ...) runs on the host; only an exit that returns a child
 *     needs Python (the result is a host pid, and a reaped child frees its
 *     guest pid).
 * For those, C resumes the entry with PTRACE_SYSCALL and remembers in the
 * slot what the exit needs. Anything else, or a task someone debugs, goes to
 * Python as before.
 */
#define _GNU_SOURCE
#include "accel.h"
#include "accel_int.h"

#include <errno.h>
#include <stddef.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>

/* clone flags that need the kernel's decision (Python refuses or rewrites) */
#define CLONE_UNTRACED_FLAG 0x00800000UL
#define CLONE_NEW_NAMESPACES (0x00020000UL | 0x02000000UL | 0x04000000UL | 0x08000000UL | \
                              0x10000000UL | 0x20000000UL | 0x40000000UL | 0x00000080UL)

void uml_set_fast_stops(struct uml_ctx *c, int enabled) { c->fast_stops = enabled; }
void uml_set_task_limit(struct uml_ctx *c, unsigned int limit) { c->task_limit = limit; }

int uml_resume(struct uml_ctx *c, int tid, int sig) {
    struct slot *s = uml_tab_find(c, tid);
    int req = s && s->fix ? PTRACE_SYSCALL : PTRACE_CONT;
    return ptrace(req, tid, 0, (long)sig) == 0 ? 0 : -errno;
}

static int entry_fix(struct uml_ctx *c, const struct uml_event *ev) {
    switch (ev->nr) {
    case SYS_set_tid_address:
        return UML_FIX_TID;
    case SYS_clone:
        if (ev->args[0] & (CLONE_NEW_NAMESPACES | CLONE_UNTRACED_FLAG))
            return UML_FIX_NONE;
        /* fall through */
    case SYS_fork:
    case SYS_vfork:
        return c->count + 1 < c->task_limit ? UML_FIX_FORK : UML_FIX_NONE;
    case SYS_wait4:
        return (int)ev->args[0] == -1 ? UML_FIX_PYEXIT : UML_FIX_NONE;
    default:
        return UML_FIX_NONE;
    }
}

static int set_rax_and_go(pid_t tid, int64_t value) {
    ptrace(PTRACE_POKEUSER, tid, offsetof(struct user_regs_struct, rax), value);
    ptrace(PTRACE_CONT, tid, 0, 0);     /* ESRCH: it was killed meanwhile */
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
        break;
    default:
        break;
    }
    ev->fix = fix;
    return 0;
}

int uml_fast_stop(struct uml_ctx *c, struct uml_event *ev) {
    if (!ev->regs_ok)
        return 0;
    if (ev->kind == UML_EV_SECCOMP && c->fast && c->fast_stops) {
        int fix = entry_fix(c, ev);
        if (fix == UML_FIX_NONE)
            return 0;
        struct slot *s = uml_tab_find(c, ev->tid);
        if (!s)
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
