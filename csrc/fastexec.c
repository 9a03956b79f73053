/* umlpy accelerator: execve answered in C.
 *
 * A shell's fork+exec loop execs the same few programs over and over, and the
 * kernel in Python spent about 110 us on each execve entry (the walk, the
 * permission checks, the image lookup of the program and of its ld.so) and
 * 29 us on its exec event. When Python has prepared an exec of an ELF by a
 * path (execve, no #! script), it publishes the result here, keyed like a
 * path stat (statpath.c): the task's resolution context and the path text.
 * The answer holds while the generation of fastnotif.c stands (no name,
 * attribute or credential changed since), and while the files it was made
 * from are the versions it was made from: the program, and its ld.so, whose
 * kernel descriptors C fstats (a native write moves their size, mtime or
 * ctime). When ld.so is the host's own file (PT_INTERP kept as it is), the
 * host's file at that path must still be that version too.
 *
 * An execve that finds its answer gets the image's host path written below
 * its stack pointer, as Python writes it, and runs on with no exit stop (an
 * exec's exit belongs to the new image; a failed one returns the host's
 * errno, as in Python). Its exec event is then checked here: the image the
 * host loaded (/proc/TID/exe) must be the one named, else Python sees the
 * event (and kills the task: another thread rewrote the path). Both are
 * logged for the kernel to adopt before its next event (the pending exec,
 * then the new exe and comm). A thread's exec (it takes over the leader's
 * host pid), and anything while someone debugs, go to Python.
 */
#define _GNU_SOURCE
#include "accel.h"
#include "accel_int.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/user.h>

#define EXEC_SLOTS 64               /* a cache: a colliding answer replaces the older one */
#define EXEC_CHECKS 2               /* the program, and its ld.so */
#define SCRATCH_GAP 1024            /* as umlpy/syscalls/exec.py: clear of the red zone */

struct exec_slot {
    uint64_t gen;                   /* 0: empty or void */
    uint32_t ctx, serial;
    uint16_t len, host_len, interp_len;
    uint8_t nchecks;
    char name[UML_PATH_KEY_MAX];
    char host_path[UML_EXEC_PATH_MAX];
    char host_interp[UML_PATH_KEY_MAX];     /* "" unless ld.so is the host's own */
    uint64_t image_dev, image_ino;
    struct uml_exec_check checks[EXEC_CHECKS];
};

static int same_version(const struct stat *s, const struct uml_exec_check *k) {
    return (uint64_t)s->st_dev == k->dev && (uint64_t)s->st_ino == k->ino
           && (int64_t)s->st_size == k->size && uml_ts_ns(&s->st_mtim) == k->mtime_ns
           && uml_ts_ns(&s->st_ctim) == k->ctime_ns;
}

int uml_exec_publish(struct uml_ctx *c, int tid, const char *name, size_t len,
                     const char *host_path, size_t host_len, uint64_t image_dev,
                     uint64_t image_ino, const struct uml_exec_check *checks, int nchecks,
                     const char *host_interp, size_t interp_len, uint32_t *serial) {
    const struct slot *t = uml_tab_find(c, tid);
    if (len == 0 || len >= UML_PATH_KEY_MAX || host_len == 0 || host_len >= UML_EXEC_PATH_MAX
            || interp_len >= UML_PATH_KEY_MAX || nchecks < 1 || nchecks > EXEC_CHECKS
            || (interp_len && nchecks != 2))
        return -EINVAL;
    if (!t || t->ctx == 0)
        return -ESRCH;
    if (!c->execs && !(c->execs = calloc(EXEC_SLOTS, sizeof *c->execs)))
        return -ENOMEM;
    uint32_t i = uml_key_hash(t->ctx, name, len, 0) & (EXEC_SLOTS - 1);
    struct exec_slot *x = &c->execs[i];
    x->ctx = t->ctx;
    x->serial = ++c->exec_serial;
    x->len = (uint16_t)len;
    memcpy(x->name, name, len);
    x->host_len = (uint16_t)host_len;
    memcpy(x->host_path, host_path, host_len);
    x->host_path[host_len] = 0;
    x->interp_len = (uint16_t)interp_len;
    memcpy(x->host_interp, host_interp, interp_len);
    x->host_interp[interp_len] = 0;
    x->image_dev = image_dev;
    x->image_ino = image_ino;
    x->nchecks = (uint8_t)nchecks;
    memcpy(x->checks, checks, (size_t)nchecks * sizeof *checks);
    x->gen = uml_stat_generation(c);
    *serial = x->serial;
    return (int)i;
}

void uml_exec_void(struct uml_ctx *c) {
    if (c->execs)
        for (int i = 0; i < EXEC_SLOTS; i++)
            c->execs[i].gen = 0;
}

/* x still answers: its files are the versions it was made from. */
static int still_holds(const struct exec_slot *x) {
    struct stat s;
    for (int i = 0; i < x->nchecks; i++)
        if (fstat((int)x->checks[i].fd, &s) != 0 || !same_version(&s, &x->checks[i]))
            return 0;
    return !x->interp_len || (stat(x->host_interp, &s) == 0 && same_version(&s, &x->checks[1]));
}

static int log_note(struct uml_ctx *c, int32_t tid, uint32_t slot, uint32_t serial,
                    uint32_t done) {
    if (!uml_log_room((void **)&c->exec_log, c->exec_count, sizeof *c->exec_log, UML_LOG_MAX))
        return 0;
    c->exec_log[c->exec_count] = (struct uml_exec_note){tid, slot, serial, done};
    __atomic_store_n(&c->exec_count, c->exec_count + 1, __ATOMIC_RELEASE);
    return 1;
}

UML_INTERNAL int uml_fast_exec_entry(struct uml_ctx *c, struct uml_event *ev) {
    struct slot *t = uml_tab_find(c, ev->tid);
    if (!t)
        return 0;
    t->exec_wait = 0;               /* whatever an earlier execve left: this one decides */
    if (!c->fast || !c->fast_stops || !c->execs || !ev->regs_ok || ev->nr != SYS_execve
            || t->ctx == 0 || t->fix)
        return 0;
    char name[UML_PATH_KEY_MAX];
    int64_t len = uml_mem_read_str(ev->tid, ev->args[0], name, sizeof name);
    if (len <= 0)
        return 0;
    uint32_t i = uml_key_hash(t->ctx, name, (size_t)len, 0) & (EXEC_SLOTS - 1);
    const struct exec_slot *x = &c->execs[i];
    if (x->gen != uml_stat_generation(c) || x->ctx != t->ctx || x->len != len
            || memcmp(x->name, name, (size_t)len) != 0 || !still_holds(x))
        return 0;
    uint64_t at = (ev->sp - SCRATCH_GAP - (x->host_len + 1u)) & ~(uint64_t)0xF;
    if (uml_mem_write(ev->tid, at, x->host_path, x->host_len + 1u) != x->host_len + 1)
        return 0;
    if (ptrace(PTRACE_POKEUSER, ev->tid, offsetof(struct user_regs_struct, rdi), at) != 0
            || !log_note(c, ev->tid, i, x->serial, 0))
        return 0;
    t->exec_wait = 1;
    t->exec_slot = i;
    t->exec_serial = x->serial;
    t->exec_dev = x->image_dev;
    t->exec_ino = x->image_ino;
    c->stats.fast_execs++;
    ptrace(PTRACE_CONT, ev->tid, 0, 0);     /* ESRCH: killed meanwhile, its death follows */
    return 1;
}

UML_INTERNAL int uml_fast_exec_event(struct uml_ctx *c, struct uml_event *ev) {
    struct slot *t = uml_tab_find(c, ev->tid);
    if (!t || !t->exec_wait)
        return 0;
    t->exec_wait = 0;
    if (!c->fast || !c->fast_stops || (int)ev->msg != ev->tid)
        return 0;
    char proc[40];
    struct stat s;
    snprintf(proc, sizeof proc, "/proc/%d/exe", ev->tid);
    if (stat(proc, &s) != 0 || (uint64_t)s.st_dev != t->exec_dev
            || (uint64_t)s.st_ino != t->exec_ino)
        return 0;                   /* not the image named: Python kills it */
    if (!log_note(c, ev->tid, t->exec_slot, t->exec_serial, 1))
        return 0;
    ptrace(PTRACE_CONT, ev->tid, 0, 0);     /* ESRCH: killed meanwhile, its death follows */
    return 1;
}

const uint32_t *uml_exec_log_count(struct uml_ctx *c) { return &c->exec_count; }

int uml_exec_log_take(struct uml_ctx *c, struct uml_exec_note *out, int max) {
    return uml_log_take(c->exec_log, &c->exec_count, sizeof *out, out, max);
}
