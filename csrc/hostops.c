/* umlpy accelerator: ptrace requests, guest memory and single-stepping as
 * the kernel's Python calls them (umlpy/host/tracer.py); each returns 0 or
 * -errno, the memory calls a byte count. */
#define _GNU_SOURCE
#include "accel.h"
#include "accel_int.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>

#define PAGE 4096

/* ---- ptrace wrappers ---- */

static int ret_errno(long r) { return r < 0 ? -errno : 0; }

int uml_cont(int tid, int sig) { return ret_errno(ptrace(PTRACE_CONT, tid, 0, (long)sig)); }
int uml_syscall(int tid, int sig) { return ret_errno(ptrace(PTRACE_SYSCALL, tid, 0, (long)sig)); }
int uml_listen(int tid) { return ret_errno(ptrace(PTRACE_LISTEN, tid, 0, 0)); }
int uml_interrupt(int tid) { return ret_errno(ptrace(PTRACE_INTERRUPT, tid, 0, 0)); }

int uml_skip(int tid, int64_t retval) {
    if (ptrace(PTRACE_POKEUSER, tid, offsetof(struct user_regs_struct, orig_rax), -1L) != 0)
        return -errno;
    if (ptrace(PTRACE_POKEUSER, tid, offsetof(struct user_regs_struct, rax), retval) != 0)
        return -errno;
    return ret_errno(ptrace(PTRACE_CONT, tid, 0, 0));
}

int uml_get_regs(int tid, struct user_regs_struct *regs) {
    return ret_errno(ptrace(PTRACE_GETREGS, tid, 0, regs));
}

int uml_set_regs(int tid, const struct user_regs_struct *regs) {
    return ret_errno(ptrace(PTRACE_SETREGS, tid, 0, regs));
}

int uml_set_rax(int tid, int64_t value) {
    return ret_errno(ptrace(PTRACE_POKEUSER, tid, offsetof(struct user_regs_struct, rax), value));
}

int uml_set_syscall(int tid, int which, uint64_t nr, uint64_t rax, uint64_t a0, uint64_t a1,
                    uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5) {
    struct user_regs_struct r;
    if (ptrace(PTRACE_GETREGS, tid, 0, &r) != 0)
        return -errno;
    if (which & UML_SET_NR)
        r.orig_rax = nr;
    if (which & UML_SET_RAX)
        r.rax = rax;
    r.rdi = a0;
    r.rsi = a1;
    r.rdx = a2;
    r.r10 = a3;
    r.r8 = a4;
    r.r9 = a5;
    return ret_errno(ptrace(PTRACE_SETREGS, tid, 0, &r));
}

int uml_get_siginfo(int tid, void *buf128) {
    return ret_errno(ptrace(PTRACE_GETSIGINFO, tid, 0, buf128));
}

int uml_set_siginfo(int tid, const void *buf128) {
    return ret_errno(ptrace(PTRACE_SETSIGINFO, tid, 0, buf128));
}

/* ---- guest memory ---- */

int64_t uml_mem_read(int pid, uint64_t addr, void *buf, uint64_t len) {
    struct iovec local = {.iov_base = buf, .iov_len = len};
    struct iovec remote = {.iov_base = (void *)addr, .iov_len = len};
    ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    return n < 0 ? -errno : n;
}

int64_t uml_mem_write(int pid, uint64_t addr, const void *buf, uint64_t len) {
    struct iovec local = {.iov_base = (void *)buf, .iov_len = len};
    struct iovec remote = {.iov_base = (void *)addr, .iov_len = len};
    ssize_t n = process_vm_writev(pid, &local, 1, &remote, 1, 0);
    return n < 0 ? -errno : n;
}

/* Read a NUL-terminated string, one page at a time so that a string that
 * ends just before an unmapped page still reads. Returns its length. */
int64_t uml_mem_read_str(int pid, uint64_t addr, char *buf, uint64_t max) {
    uint64_t done = 0;
    if (addr == 0)
        return -EFAULT;
    while (done < max) {
        uint64_t chunk = PAGE - ((addr + done) % PAGE);
        if (chunk > max - done)
            chunk = max - done;
        int64_t n = uml_mem_read(pid, addr + done, buf + done, chunk);
        if (n <= 0)
            return n < 0 ? n : -EFAULT;
        char *nul = memchr(buf + done, 0, (size_t)n);
        if (nul)
            return (int64_t)(nul - buf);
        done += (uint64_t)n;
    }
    return -ENAMETOOLONG;
}

/* ---- debugging (umlpy/debug) ---- */

/* An eventfd another thread writes to when it has work for the tracing thread. */
void uml_set_wake_fd(struct uml_ctx *c, int fd) { c->wakefd = fd; }

int uml_singlestep(int tid, int sig) {
    return ret_errno(ptrace(PTRACE_SINGLESTEP, tid, 0, (long)sig));
}
