"""cffi build script for the accelerator (API mode, out of line)."""
import glob
import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))

CDEF = """
enum uml_event_kind {
    UML_EV_NONE, UML_EV_NOTIF, UML_EV_SECCOMP, UML_EV_SYSEXIT, UML_EV_FORK, UML_EV_VFORK,
    UML_EV_CLONE, UML_EV_EXEC, UML_EV_SIGNAL, UML_EV_GROUPSTOP, UML_EV_TRAPSTOP,
    UML_EV_EXITED, UML_EV_KILLED, UML_EV_INTR, UML_EV_ADOPT, ...
};
struct user_regs_struct {
    unsigned long long r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8;
    unsigned long long rax, rcx, rdx, rsi, rdi, orig_rax, rip, cs, eflags, rsp, ss;
    unsigned long long fs_base, gs_base, ds, es, fs, gs;
};
struct uml_event {
    int kind; int tid; int status; int sig;
    int64_t nr; uint64_t args[6]; int64_t ret; uint64_t msg; uint64_t notif_id;
    uint64_t ip; uint64_t sp; int regs_ok; int fix;
};
struct uml_stats { uint64_t fast_answers; uint64_t notifs; uint64_t ptrace_stops; uint64_t c_stops;
                   uint64_t fast_stats; uint64_t fast_attrs; uint64_t fast_creates;
                   uint64_t fast_opens; uint64_t fast_unlinks;
                   uint64_t lost_wakeups; uint64_t fast_execs; uint64_t fast_starts;
                   uint64_t childless_waits; };
struct uml_ctx;
struct uml_ctx *uml_new(void);
void uml_free(struct uml_ctx *c);
int uml_listener_fd(struct uml_ctx *c);
void uml_get_stats(struct uml_ctx *c, struct uml_stats *out);
void uml_set_fast(struct uml_ctx *c, int enabled);
int uml_spawn(struct uml_ctx *c, const char *path, char *const argv[], char *const envp[],
              const void *filter, unsigned int filter_len, int console_fd,
              int userns_fd, int netns_fd);
enum { UML_KEEPER_NETNS = 1 };
enum { UML_KEEPER_SOCKET = 1, UML_KEEPER_KEEP = 2, UML_KEEPER_DROP = 3 };
int uml_keeper(int flags, int *sock_out);
int uml_drop_caps(void);
int uml_next(struct uml_ctx *c, struct uml_event *ev);
enum { UML_FIX_NONE = 0, UML_FIX_TID = 1, UML_FIX_FORK = 2, UML_FIX_PYEXIT = 3 };
void uml_set_fast_stops(struct uml_ctx *c, int enabled);
const uint32_t *uml_reap_log_count(struct uml_ctx *c);
int uml_reap_log_take(struct uml_ctx *c, int32_t *out, int max);
void uml_set_task_limit(struct uml_ctx *c, unsigned int limit);
void uml_set_ticks(struct uml_ctx *c, int on);
int uml_arm_exit(struct uml_ctx *c, int tid, int fix);
int uml_resume(struct uml_ctx *c, int tid, int sig);
int uml_arm_start(struct uml_ctx *c, int tid, int on);
int uml_start_armed(struct uml_ctx *c, int tid);
enum { UML_FSTAT_CHECK_CTIME = 1, UML_FSTAT_LIVE_DATA = 2, UML_FSTAT_TMPFS_CTIME = 4,
       UML_FSTAT_SETATTR = 8 };
struct uml_fstat {
    uint64_t host_dev, host_ino; int64_t host_ctime_ns; uint32_t flags;
    uint32_t mode, uid, gid; uint64_t dev, ino, nlink, rdev;
    int64_t size, blksize, blocks; int64_t atime_ns, mtime_ns, ctime_ns; int64_t host_fd;
};
int uml_fstat_publish(struct uml_ctx *c, const struct uml_fstat *view);
void uml_fstat_forget(struct uml_ctx *c);
struct uml_attr_change {
    uint64_t host_dev, host_ino; uint32_t mode, uid, gid, pad; int64_t ctime_ns, host_ctime_ns;
};
int uml_create_publish(struct uml_ctx *c, int tid, const char *key, size_t key_len,
                       uint32_t uid, uint32_t gid, uint32_t umask, uint64_t dev,
                       uint64_t next_ino, uint64_t inodes_left,
                       const char *names, size_t names_len, uint32_t name_count,
                       const uint8_t *removable);
struct uml_create {
    uint32_t slot, serial; uint64_t ino; uint64_t host_dev, host_ino; int64_t host_fd;
    uint32_t mode, uid, gid, name_len; uint32_t removed, pad; int64_t time_ns; char name[256];
};
uint32_t uml_create_serial(struct uml_ctx *c, int slot);
const uint32_t *uml_create_log_count(struct uml_ctx *c);
int uml_create_log_take(struct uml_ctx *c, struct uml_create *out, int max);
int uml_path_open_recipe(struct uml_ctx *c, int slot, int dirfd, const char *rel, size_t rel_len,
                         uint32_t resolve, uint32_t extra_flags, uint64_t dev, uint64_t ino);
struct uml_open_note { uint32_t slot, pad; uint64_t host_dev, host_ino; };
const uint32_t *uml_open_log_count(struct uml_ctx *c);
int uml_open_log_take(struct uml_ctx *c, struct uml_open_note *out, int max);
const uint32_t *uml_attr_log_count(struct uml_ctx *c);
int uml_attr_log_take(struct uml_ctx *c, struct uml_attr_change *out, int max);
int uml_path_publish(struct uml_ctx *c, int tid, const char *name, size_t len, int nofollow,
                     int err, int host_fd, const struct uml_fstat *view);
#define UML_EXEC_PATH_MAX 512
struct uml_exec_check { int64_t fd; uint64_t dev, ino; int64_t size, mtime_ns, ctime_ns; };
int uml_exec_publish(struct uml_ctx *c, int tid, const char *name, size_t len,
                     const char *host_path, size_t host_len, uint64_t image_dev,
                     uint64_t image_ino, const struct uml_exec_check *checks, int nchecks,
                     const char *host_interp, size_t interp_len, uint32_t *serial);
void uml_exec_void(struct uml_ctx *c);
struct uml_exec_note { int32_t tid; uint32_t slot, serial, done; };
const uint32_t *uml_exec_log_count(struct uml_ctx *c);
int uml_exec_log_take(struct uml_ctx *c, struct uml_exec_note *out, int max);
int uml_cont(int tid, int sig);
int uml_syscall(int tid, int sig);
int uml_listen(int tid);
int uml_interrupt(int tid);
int uml_skip(int tid, int64_t retval);
int uml_get_regs(int tid, struct user_regs_struct *regs);
int uml_set_regs(int tid, const struct user_regs_struct *regs);
int uml_set_rax(int tid, int64_t value);
enum { UML_SET_NR = 1, UML_SET_RAX = 2 };
int uml_set_syscall(int tid, int which, uint64_t nr, uint64_t rax, uint64_t a0, uint64_t a1,
                    uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5);
int uml_get_siginfo(int tid, void *buf128);
int uml_set_siginfo(int tid, const void *buf128);
int uml_notif_reply(struct uml_ctx *c, uint64_t id, int64_t val, int err);
int uml_notif_continue(struct uml_ctx *c, uint64_t id);
int uml_notif_addfd(struct uml_ctx *c, uint64_t id, int srcfd, unsigned int newfd_flags);
int uml_notif_valid(struct uml_ctx *c, uint64_t id);
int64_t uml_mem_read(int pid, uint64_t addr, void *buf, uint64_t len);
int64_t uml_mem_write(int pid, uint64_t addr, const void *buf, uint64_t len);
int64_t uml_mem_read_str(int pid, uint64_t addr, char *buf, uint64_t max);
int uml_task_set(struct uml_ctx *c, int tid, int gtid, int gtgid, int gppid,
                 unsigned int uid, unsigned int euid, unsigned int gid, unsigned int egid,
                 unsigned int fsuid, unsigned int fsgid, unsigned int ctx,
                 unsigned int children);
int uml_task_del(struct uml_ctx *c, int tid);
int uml_task_children(struct uml_ctx *c, int tid, unsigned int children);
void uml_set_wake_fd(struct uml_ctx *c, int fd);
int uml_singlestep(int tid, int sig);
int64_t uml_pt_raw(int req, int tid, uint64_t addr, uint64_t data);
"""

# UMLPY_ACCEL_INSTRUMENT=gcov builds the accelerator with gcov counters (the .gcda
# files land beside the object files); =gprof without inlining, so that glibc's
# shared-object profiler (LD_PROFILE) charges each function; README "Debugging and
# profiling" has the report commands. Unset: the normal optimized build. Every build
# carries the SONAME LD_PROFILE names it by.
SONAME = "umlpy_accel.so"
INSTRUMENT = {
    "": ([], []),
    "gcov": (["-O0", "--coverage"], ["--coverage"]),
    "gprof": (["-g", "-fno-inline", "-fno-omit-frame-pointer"], []),
}
_mode = os.environ.get("UMLPY_ACCEL_INSTRUMENT", "")
if _mode not in INSTRUMENT:
    raise SystemExit(f"UMLPY_ACCEL_INSTRUMENT={_mode!r}: expected one of "
                     f"{', '.join(m for m in INSTRUMENT if m)}")

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "umlpy.host._accel",
    '#include "accel.h"',
    sources=sorted(os.path.relpath(p) for p in glob.glob(os.path.join(HERE, "*.c"))),
    include_dirs=[os.path.relpath(HERE)],
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    + INSTRUMENT[_mode][0] + os.environ.get("UMLPY_CFLAGS", "").split(),
    extra_link_args=[f"-Wl,-soname,{SONAME}"] + INSTRUMENT[_mode][1]
    + os.environ.get("UMLPY_LDFLAGS", "").split(),
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
