/* umlpy accelerator, internal: the per-task table and the context, shared by
 * accel.c (the event loop) and faststops.c (stops answered in C). */
#ifndef UMLPY_ACCEL_INT_H
#define UMLPY_ACCEL_INT_H

#include <linux/seccomp.h>
#include <stdint.h>
#include <sys/types.h>

#include "accel.h"

struct slot {
    int32_t tid;            /* 0 = empty */
    int32_t gtid, gtgid, gppid;
    uint32_t uid, euid, gid, egid;
    uint8_t fix;            /* FIX_*: what its next syscall-exit stop needs (faststops.c) */
};

struct uml_ctx {
    int lfd;                /* seccomp listener */
    int sigfd;              /* signalfd for SIGCHLD */
    int fast;
    struct seccomp_notif_sizes sizes;
    struct seccomp_notif *req;
    struct seccomp_notif_resp *resp;
    struct slot *tab;
    uint32_t cap, count;
    struct uml_stats stats;
    int wakefd;             /* readable: uml_next returns UML_EV_INTR (debugger requests) */
    int fast_stops;         /* faststops.c may answer stops (off under gdb, guest ptrace) */
    uint32_t task_limit;    /* past it, fork and clone go to Python (EAGAIN) */
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

#endif
