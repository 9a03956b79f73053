/* umlpy accelerator: see accel.h. */
#define _GNU_SOURCE
#include "accel.h"
#include "accel_int.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PTRACE_EVENT_STOP
#define PTRACE_EVENT_STOP 128
#endif

/* Linux 6.6's uapi, newer than some build hosts' headers */
#define UML_SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#define UML_SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP 1UL

/* ---- per-task table: open addressing, linear probing, backward-shift delete ---- */

static uint32_t hash_tid(int32_t tid, uint32_t cap) {
    return ((uint32_t)tid * 2654435761u) & (cap - 1);
}

struct slot *uml_tab_find(struct uml_ctx *c, int32_t tid) {
    uint32_t i = hash_tid(tid, c->cap);
    for (;;) {
        struct slot *s = &c->tab[i];
        if (s->tid == tid)
            return s;
        if (s->tid == 0)
            return NULL;
        i = (i + 1) & (c->cap - 1);
    }
}

static int tab_grow(struct uml_ctx *c) {
    uint32_t ncap = c->cap * 2;
    struct slot *nt = calloc(ncap, sizeof *nt);
    if (!nt)
        return -ENOMEM;
    for (uint32_t i = 0; i < c->cap; i++) {
        if (c->tab[i].tid == 0)
            continue;
        uint32_t j = hash_tid(c->tab[i].tid, ncap);
        while (nt[j].tid != 0)
            j = (j + 1) & (ncap - 1);
        nt[j] = c->tab[i];
    }
    free(c->tab);
    c->tab = nt;
    c->cap = ncap;
    return 0;
}

int uml_task_set(struct uml_ctx *c, int tid, int gtid, int gtgid, int gppid,
                 unsigned int uid, unsigned int euid, unsigned int gid, unsigned int egid,
                 unsigned int fsuid, unsigned int fsgid, unsigned int ctx,
                 unsigned int children) {
    if (tid <= 0)
        return -EINVAL;
    struct slot *s = uml_tab_find(c, tid);
    if (!s) {
        if ((c->count + 1) * 2 > c->cap) {
            int r = tab_grow(c);
            if (r)
                return r;
        }
        uint32_t i = hash_tid(tid, c->cap);
        while (c->tab[i].tid != 0)
            i = (i + 1) & (c->cap - 1);
        s = &c->tab[i];
        s->fix = 0;
        s->exec_wait = 0;
        s->start_wait = 0;
        c->count++;
        uml_forget_zombie(c, tid);     /* a host pid used again */
    }
    s->tid = tid;
    s->gtid = gtid;
    s->gtgid = gtgid;
    s->gppid = gppid;
    s->uid = uid;
    s->euid = euid;
    s->gid = gid;
    s->egid = egid;
    s->fsuid = fsuid;
    s->fsgid = fsgid;
    s->ctx = ctx;
    s->children = children;
    return 0;
}

int uml_task_children(struct uml_ctx *c, int tid, unsigned int children) {
    struct slot *s = uml_tab_find(c, tid);
    if (!s)
        return -ENOENT;
    s->children = children;
    return 0;
}

int uml_task_del(struct uml_ctx *c, int tid) {
    struct slot *s = uml_tab_find(c, tid);
    if (!s)
        return -ENOENT;
    uint32_t i = (uint32_t)(s - c->tab);
    uint32_t j = i;
    c->tab[i].tid = 0;
    c->count--;
    /* Backward-shift: move later entries of the probe run into the hole. */
    for (;;) {
        j = (j + 1) & (c->cap - 1);
        if (c->tab[j].tid == 0)
            break;
        uint32_t home = hash_tid(c->tab[j].tid, c->cap);
        /* Entry at j may move to i if its home is not in (i, j]. */
        int in_range = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            c->tab[i] = c->tab[j];
            c->tab[j].tid = 0;
            i = j;
        }
    }
    return 0;
}

/* ---- context ---- */

struct uml_ctx *uml_new(void) {
    struct uml_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->lfd = -1;
    c->wakefd = -1;
    c->fast = 1;
    c->fast_stops = 1;
    c->task_limit = 4096;
    c->fstat_gen = 1;
    c->names_gen = 1;
    c->reap = 1;
    c->cap = 1024;
    c->tab = calloc(c->cap, sizeof *c->tab);
    if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &c->sizes) != 0) {
        free(c->tab);
        free(c);
        return NULL;
    }
    c->req = calloc(1, c->sizes.seccomp_notif > sizeof(struct seccomp_notif)
                           ? c->sizes.seccomp_notif : sizeof(struct seccomp_notif));
    /* SIGCHLD is read through a signalfd so one poll() waits for ptrace stops
     * and seccomp notifications alike. Threads created later inherit the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    c->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    c->self_fds = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (!c->tab || !c->req || c->sigfd < 0 || c->self_fds < 0
            || c->sizes.seccomp_notif_resp > UML_RESP_MAX) {
        uml_free(c);
        return NULL;
    }
    return c;
}

void uml_free(struct uml_ctx *c) {
    if (!c)
        return;
    if (c->lfd >= 0)
        close(c->lfd);
    if (c->sigfd >= 0)
        close(c->sigfd);
    if (c->self_fds >= 0)
        close(c->self_fds);
    free(c->req);
    free(c->tab);
    free(c->fstats);
    free(c->paths);
    free(c->attr_log);
    uml_creates_free(c);
    free(c->create_log);
    free(c->open_log);
    free(c->zombies);
    free(c->reap_log);
    free(c->execs);
    free(c->exec_log);
    free(c);
}

int uml_listener_fd(struct uml_ctx *c) { return c->lfd; }
void uml_get_stats(struct uml_ctx *c, struct uml_stats *out) { *out = c->stats; }
void uml_set_fast(struct uml_ctx *c, int enabled) { c->fast = enabled; }

/* ---- spawning the first guest process ---- */

static void child_fail(int sock, int err) {
    /* Report errno to the parent in place of the listener fd. */
    int e = err;
    (void)!write(sock, &e, sizeof e);
    _exit(127);
}

/* The child's report: its listener's fd number (int[2] {0, fd}), or errno
 * (one int, child_fail). Returns our copy of the listener, or -errno. */
static int take_listener(int sock, pid_t pid) {
    int word[2] = {0, -1};
    ssize_t n;
    do {
        n = read(sock, word, sizeof word);
    } while (n < 0 && errno == EINTR);
    if (n == (ssize_t)sizeof(int))
        return word[0] > 0 ? -word[0] : -EPROTO;
    if (n != (ssize_t)sizeof word || word[1] < 0)
        return -EPROTO;
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0)
        return -errno;
    int fd = (int)syscall(SYS_pidfd_getfd, pidfd, word[1], 0);
    int e = errno;
    close(pidfd);
    if (fd < 0)
        return -e;
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
}

int uml_spawn(struct uml_ctx *c, const char *path, char *const argv[], char *const envp[],
              const void *filter, unsigned int filter_len, int console_fd,
              int userns_fd, int netns_fd) {
    int sv[2];
    c->reap = 1;                /* a child to wait for, from now on */
    pid_t pid = uml_fork_paired(sv);
    if (pid < 0)
        return pid;
    if (pid == 0) {
        int s = sv[1];
        sigset_t empty;
        sigemptyset(&empty);
        sigprocmask(SIG_SETMASK, &empty, NULL);
        signal(SIGPIPE, SIG_DFL);   /* Python ignores these two; guests must not */
        signal(SIGXFSZ, SIG_DFL);
        if (console_fd >= 0) {
            /* A booted machine's init starts with every signal at its default,
             * whatever umlpy was started with (`umlpy ... &` from a script
             * ignores SIGINT and SIGQUIT; ^C on the console must still work).
             * `umlpy run` keeps them, as exec does (nohup umlpy run ...). */
            for (int sig = 1; sig < NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                    signal(sig, SIG_DFL);
            /* The first process gets the console as its stdio and controlling
             * terminal, in a session of its own, as init does. */
            if (setsid() < 0 || dup2(console_fd, 0) < 0 || dup2(console_fd, 1) < 0 ||
                dup2(console_fd, 2) < 0 || ioctl(0, TIOCSCTTY, 0) < 0)
                child_fail(s, errno);
        } else {
            setpgid(0, 0);
        }
        /* --net=none: join the namespaces of the network agent */
        if (userns_fd >= 0 && setns(userns_fd, CLONE_NEWUSER) != 0)
            child_fail(s, errno);
        if (netns_fd >= 0 && setns(netns_fd, CLONE_NEWNET) != 0)
            child_fail(s, errno);
        /* A guest has no host capabilities, whatever umlpy runs as: guest
         * root is the kernel's idea, and what runs natively runs unprivileged. */
        int e = uml_drop_caps();
        if (e)
            child_fail(s, e);
        prctl(PR_SET_DUMPABLE, 1);  /* new credentials made us undumpable: untraceable */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        prctl(PR_SET_CHILD_SUBREAPER, 1);
        /* Only stdio and the handshake socket survive into the guest. */
        if (s != 3) {
            if (dup2(s, 3) < 0)
                child_fail(s, errno);
            s = 3;
        }
        syscall(SYS_close_range, 4, ~0U, 0);
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
            child_fail(s, errno);
        struct sock_fprog prog = {.len = (unsigned short)filter_len,
                                  .filter = (struct sock_filter *)filter};
        int lfd = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                               SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
        if (lfd < 0)
            child_fail(s, errno);
        /* The filter is on: sendmsg would now wait for the kernel, which has
         * no listener yet. Only the number goes over; the parent takes the
         * fd itself with pidfd_getfd. */
        int word[2] = {0, lfd};
        if (write(s, word, sizeof word) != (ssize_t)sizeof word)
            _exit(127);
        char go;
        if (read(s, &go, 1) != 1)   /* wait until the parent has it and has seized us */
            _exit(127);
        close(lfd);
        close(s);
        execve(path, argv, envp);
        _exit(127);
    }
    close(sv[1]);
    int lfd = take_listener(sv[0], pid);
    if (lfd < 0) {
        close(sv[0]);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, __WALL);
        return lfd;
    }
    long opts = PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK |
                PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC | PTRACE_O_TRACESECCOMP |
                PTRACE_O_EXITKILL;
    if (ptrace(PTRACE_SEIZE, pid, 0, opts) != 0) {
        int e = errno;
        close(lfd);
        close(sv[0]);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, __WALL);
        return -e;
    }
    if (c->lfd >= 0)
        close(c->lfd);
    c->lfd = lfd;
    /* Linux 6.6+: the guest and this thread wake each other on the waker's
     * CPU. Without it, a notification between two CPUs costs a cross-CPU
     * wake-up each way (getpid 52 us free against 5.5 us pinned here); with
     * it, 5.5 us either way. Older kernels refuse the ioctl (EINVAL): they
     * keep the slower wake-ups, nothing else changes. */
    (void)!ioctl(lfd, UML_SECCOMP_IOCTL_NOTIF_SET_FLAGS, UML_SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP);
    (void)!write(sv[0], "g", 1);
    close(sv[0]);
    return pid;
}

/* ---- decoding stops ---- */

static void fill_syscall(struct uml_event *ev, const struct user_regs_struct *r) {
    ev->nr = (int64_t)r->orig_rax;
    ev->args[0] = r->rdi;
    ev->args[1] = r->rsi;
    ev->args[2] = r->rdx;
    ev->args[3] = r->r10;
    ev->args[4] = r->r8;
    ev->args[5] = r->r9;
    ev->ret = (int64_t)r->rax;
    ev->ip = r->rip;
    ev->sp = r->rsp;
    ev->regs_ok = 1;
}

static void decode(struct uml_ctx *c, pid_t tid, int st, struct uml_event *ev) {
    struct user_regs_struct r;
    memset(ev, 0, sizeof *ev);
    ev->tid = tid;
    ev->status = st;
    if (WIFEXITED(st)) {
        ev->kind = UML_EV_EXITED;
        ev->ret = WEXITSTATUS(st);
        return;
    }
    if (WIFSIGNALED(st)) {
        ev->kind = UML_EV_KILLED;
        ev->sig = WTERMSIG(st);
        return;
    }
    c->stats.ptrace_stops++;
    int sig = WSTOPSIG(st);
    int event = (st >> 16) & 0xff;
    ev->sig = sig;
    if (sig == (SIGTRAP | 0x80)) {
        ev->kind = UML_EV_SYSEXIT;
        ev->sig = 0;
        if (ptrace(PTRACE_GETREGS, tid, 0, &r) == 0)
            fill_syscall(ev, &r);
        return;
    }
    if (sig == SIGTRAP && event != 0) {
        unsigned long msg = 0;
        ptrace(PTRACE_GETEVENTMSG, tid, 0, &msg);
        ev->msg = msg;
        ev->sig = 0;
        switch (event) {
        case PTRACE_EVENT_SECCOMP:
            ev->kind = UML_EV_SECCOMP;
            if (ptrace(PTRACE_GETREGS, tid, 0, &r) == 0)
                fill_syscall(ev, &r);
            return;
        case PTRACE_EVENT_FORK:
            ev->kind = UML_EV_FORK;
            return;
        case PTRACE_EVENT_VFORK:
            ev->kind = UML_EV_VFORK;
            return;
        case PTRACE_EVENT_CLONE:
            ev->kind = UML_EV_CLONE;
            return;
        case PTRACE_EVENT_EXEC:
            ev->kind = UML_EV_EXEC;
            return;
        case PTRACE_EVENT_STOP:
            ev->kind = UML_EV_TRAPSTOP;
            ev->sig = SIGTRAP;
            return;
        default:
            ev->kind = UML_EV_TRAPSTOP;
            return;
        }
    }
    if (event == PTRACE_EVENT_STOP) {
        ev->kind = UML_EV_GROUPSTOP;
        return;
    }
    ev->kind = UML_EV_SIGNAL;
}

/* Receive one notification. Returns 1 when ev holds an event for Python. */
static int take_notif(struct uml_ctx *c, struct uml_event *ev) {
    memset(c->req, 0, c->sizes.seccomp_notif);
    if (ioctl(c->lfd, SECCOMP_IOCTL_NOTIF_RECV, c->req) != 0)
        return 0;   /* ENOENT: the waiting task was killed; EINTR: retry later */
    c->stats.notifs++;
    if (c->fast && uml_fast_answer(c, c->req)) {
        if (!uml_logs_filling(c))
            return 0;
        /* Python adopts them now, rather than the next call that finds a
         * log full going to Python (which would void what is published) */
        memset(ev, 0, sizeof *ev);
        ev->kind = UML_EV_ADOPT;
        return 1;
    }
    uml_fstat_note_python(c, c->req);
    memset(ev, 0, sizeof *ev);
    ev->kind = UML_EV_NOTIF;
    ev->tid = (int)c->req->pid;
    ev->notif_id = c->req->id;
    ev->nr = c->req->data.nr;
    for (int i = 0; i < 6; i++)
        ev->args[i] = c->req->data.args[i];
    ev->ip = c->req->data.instruction_pointer;
    return 1;
}

void uml_set_ticks(struct uml_ctx *c, int on) { c->ticks = on; }

int uml_next(struct uml_ctx *c, struct uml_event *ev) {
    for (;;) {
        int st;
        /* Ask for stops only after a SIGCHLD said there may be one: a stop
         * after the last empty wait raises SIGCHLD, which wakes the poll. */
        pid_t p = c->reap ? waitpid(-1, &st, __WALL | WNOHANG) : 0;
        if (p > 0 && c->rescue)
            c->stats.lost_wakeups++;
        c->rescue = 0;
        if (p > 0) {
            decode(c, p, st, ev);
            if (uml_fast_stop(c, ev))
                continue;
            uml_note_death(c, ev);
            uml_stop_note_python(c, ev);
            return 0;
        }
        if (c->reap) {
            c->have_children = !(p < 0 && errno == ECHILD);
            c->reap = 0;
        }
        if (c->tick) {              /* an idle period: Python may have timed work */
            c->tick = 0;
            memset(ev, 0, sizeof *ev);
            ev->kind = UML_EV_INTR;
            uml_fstat_note_python(c, NULL);
            return 0;
        }
        int have_children = c->have_children;
        if (!have_children && c->lfd < 0) {
            memset(ev, 0, sizeof *ev);
            ev->kind = UML_EV_NONE;
            return 0;
        }
        struct pollfd pf[3] = {{.fd = c->sigfd, .events = POLLIN},
                               {.fd = c->lfd, .events = POLLIN},
                               {.fd = c->wakefd, .events = POLLIN}};
        /* While Python has timed work (uml_set_ticks: kernel/orphans.py), wake
         * at least every UML_REAP_MS with an EV_INTR, after a waitpid that runs
         * even without a SIGCHLD (a stop it finds counts in lost_wakeups).
         * Otherwise no timeout: arming a timer costs every notification. */
        int timeout = (have_children && !c->ticks) ? -1 : UML_REAP_MS;
        int n = poll(pf, 3, timeout);   /* fd -1 entries are ignored */
        if (n < 0) {
            if (errno == EINTR) {
                memset(ev, 0, sizeof *ev);
                ev->kind = UML_EV_INTR;
                uml_fstat_note_python(c, NULL);
                return 0;
            }
            return -errno;
        }
        if (pf[2].revents & POLLIN) {
            uint64_t count;
            (void)!read(c->wakefd, &count, sizeof count);
            memset(ev, 0, sizeof *ev);
            ev->kind = UML_EV_INTR;
            uml_fstat_note_python(c, NULL);
            return 0;
        }
        /* A SIGCHLD first: the next call waits for stops before it takes
         * a notification, so a task stopped in ptrace (a clone event) is not
         * starved by another thread whose notifications never run out. */
        if (pf[0].revents & POLLIN) {
            struct signalfd_siginfo si[8];
            while (read(c->sigfd, si, sizeof si) > 0)
                ;
            c->reap = 1;
        }
        if (c->lfd >= 0 && (pf[1].revents & POLLIN)) {
            if (take_notif(c, ev))
                return 0;
        } else if (c->lfd >= 0 && (pf[1].revents & (POLLHUP | POLLERR))) {
            /* Every task that carried the filter is gone. */
            close(c->lfd);
            c->lfd = -1;
        }
        if (have_children && n == 0) {
            c->reap = 1;
            c->rescue = 1;
            c->tick = 1;
            continue;
        }
        if (!have_children && n == 0 && c->lfd >= 0) {
            close(c->lfd);   /* no tracee can be waiting on it any more */
            c->lfd = -1;
        }
    }
}
