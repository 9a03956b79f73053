/* Guest ptrace (umlpy/kernel/ptrace_*.py): the one primitive the kernel needs
 * to serve a guest tracer's requests on the host thread of its tracee.
 *
 * Python checks that `tid` is a guest task the caller may trace; this only
 * moves the request to the host. It is the raw syscall, not glibc's wrapper:
 * a PEEK request stores the word at `data` instead of returning it, so a word
 * equal to -1 is not mistaken for an error. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

int64_t uml_pt_raw(int req, int tid, uint64_t addr, uint64_t data) {
    long r = syscall(SYS_ptrace, (long)req, (long)tid, addr, data);
    return r < 0 ? -errno : r;
}
