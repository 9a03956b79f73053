/* umlpy accelerator: the keeper process and capability dropping.
 *
 * Guests exec their programs by a host path to a memfd (the exec image). A
 * guest cannot open /proc/<kernel pid>/fd/N when it has fewer capabilities
 * than the kernel or lives in another user namespace: the host refuses
 * ptrace-read access. So the images are held by a keeper, a small child of
 * the kernel made exactly as privileged as the guests (no capabilities; in the
 * guests' user namespace under --net=none), and guests exec
 * /proc/<keeper pid>/fd/N. Under --net=none the keeper is also the one that
 * made the network namespace, and makes sockets in there for the kernel.
 */
#define _GNU_SOURCE
#include "accel.h"
#include "accel_int.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif
/* securebits, each with its lock: root gains nothing at exec (NOROOT), set*uid
 * changes no capability (NO_SETUID_FIXUP), none can become ambient. KEEP_CAPS
 * stays unlocked: with no capability it keeps nothing, and programs such as
 * setpriv set it (a locked bit would make their prctl fail with EPERM). */
#define SECURE_NOROOT_FIXUP_LOCKED 0x0f
#define SECBIT_NO_CAP_AMBIENT_RAISE_AND_LOCK 0xc0

/* ---- passing descriptors ---- */

static int send_msg_fd(int sock, const void *word, size_t len, int fd) {
    struct iovec iov = {.iov_base = (void *)word, .iov_len = len};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof u);
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    return sendmsg(sock, &msg, 0) == (ssize_t)len ? 0 : -1;
}

/* Reads a message of up to `len` bytes into `word`; the fd it carried (or -1)
 * goes to *fd. Returns the message length, or -1. */
static ssize_t recv_msg_fd(int sock, void *word, size_t len, int *fd, int flags) {
    struct iovec iov = {.iov_base = word, .iov_len = len};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    ssize_t n;
    do {
        n = recvmsg(sock, &msg, flags);
    } while (n < 0 && errno == EINTR);
    *fd = -1;
    struct cmsghdr *cm = n >= 0 ? CMSG_FIRSTHDR(&msg) : NULL;
    if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
        memcpy(fd, CMSG_DATA(cm), sizeof(int));
    return n;
}

pid_t uml_fork_paired(int sv[2]) {
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(sv[0]);
        close(sv[1]);
        return -e;
    }
    return pid;
}

/* ---- capabilities ---- */

int uml_drop_caps(void) {
    /* The bounding set and securebits need CAP_SETPCAP: without it (not root)
     * they are already harmless, so EPERM there is not an error. */
    for (int cap = 0; cap < 64; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno == EINVAL)
            break;
    }
    if (prctl(PR_SET_SECUREBITS, SECURE_NOROOT_FIXUP_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE_AND_LOCK,
              0, 0, 0) != 0 && errno != EPERM && errno != EINVAL)
        return errno;
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &hdr, data) != 0)
        return errno;
    return 0;
}

/* ---- a network namespace of its own (--net=none) ---- */

static int write_text(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    size_t len = strlen(text);
    int e = write(fd, text, len) == (ssize_t)len ? 0 : errno;
    close(fd);
    return e;
}

/* unshare the network namespace (in a user namespace of one uid when not
 * root), bring lo up and let every uid bind low ports: the guest's own root
 * may bind port 80 in there, and its other users are checked by the kernel. */
static int net_unshare(void) {
    if (unshare(CLONE_NEWNET) != 0) {
        if (errno != EPERM)
            return errno;
        unsigned int uid = geteuid(), gid = getegid();
        char map[48];
        if (unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0)
            return errno;
        int e = write_text("/proc/self/setgroups", "deny");
        snprintf(map, sizeof map, "%u %u 1\n", uid, uid);
        if (!e)
            e = write_text("/proc/self/uid_map", map);
        snprintf(map, sizeof map, "%u %u 1\n", gid, gid);
        if (!e)
            e = write_text("/proc/self/gid_map", map);
        if (e)
            return e;
    }
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    int e = 0;
    if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0)
        e = errno;
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (!e && ioctl(s, SIOCSIFFLAGS, &ifr) != 0)
        e = errno;
    close(s);
    if (!e)
        e = write_text("/proc/sys/net/ipv4/ip_unprivileged_port_start", "0");
    return e;
}

/* ---- the keeper's service loop ---- */

static void keeper_serve(int sock) {
    for (;;) {
        int req[4], passed;
        ssize_t n = recv_msg_fd(sock, req, sizeof req, &passed, 0);
        if (n != (ssize_t)sizeof req) {
            if (passed >= 0)
                close(passed);
            _exit(0);           /* the kernel closed its end or died */
        }
        int reply;
        switch (req[0]) {
        case UML_KEEPER_SOCKET: {
            int fd = socket(req[1], req[2] | SOCK_CLOEXEC, req[3]);
            if (fd >= 0) {
                int ok = send_msg_fd(sock, &(int){0}, sizeof(int), fd);
                close(fd);
                if (ok != 0)
                    _exit(0);
                continue;
            }
            reply = errno;
            break;
        }
        case UML_KEEPER_KEEP:
            /* the fd number it got here is the name guests exec it by */
            reply = passed >= 0 ? passed : -EBADF;
            passed = -1;
            break;
        case UML_KEEPER_DROP:
            reply = req[1] > 3 && close(req[1]) == 0 ? 0 : -EBADF;
            break;
        default:
            reply = -EINVAL;
        }
        if (passed >= 0)
            close(passed);
        if (write(sock, &reply, sizeof reply) != (ssize_t)sizeof reply)
            _exit(0);
    }
}

int uml_keeper(int flags, int *sock_out) {
    int sv[2];
    pid_t parent = getpid();
    pid_t pid = uml_fork_paired(sv);
    if (pid < 0)
        return pid;
    if (pid == 0) {
        prctl(PR_SET_NAME, "umlpy-keeper", 0, 0, 0);   /* for the host's ps */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(0);
        if (dup2(sv[1], 3) < 0)
            _exit(127);
        syscall(SYS_close_range, 4, ~0U, 0);
        int e = flags & UML_KEEPER_NETNS ? net_unshare() : 0;
        if (!e)
            e = uml_drop_caps();
        /* new credentials (a user namespace) made us undumpable: guests could
         * not open our fds */
        prctl(PR_SET_DUMPABLE, 1);
        if (write(3, &e, sizeof e) != (ssize_t)sizeof e || e)
            _exit(1);
        keeper_serve(3);
    }
    close(sv[1]);
    int word = -1;
    ssize_t n;
    do {
        n = read(sv[0], &word, sizeof word);
    } while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof word || word != 0) {
        close(sv[0]);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return n == (ssize_t)sizeof word && word > 0 ? -word : -EPROTO;
    }
    *sock_out = sv[0];
    return pid;
}
