/* umlpy accelerator: replies to seccomp notifications, and the logs of what
 * C did that the kernel in Python adopts before its next event. */
#define _GNU_SOURCE
#include "accel.h"
#include "accel_int.h"

#include <errno.h>
#include <linux/seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

static int ret_errno(long r) { return r < 0 ? -errno : 0; }

UML_INTERNAL int uml_send(struct uml_ctx *c, uint64_t id, int64_t val, int32_t error,
                          uint32_t flags) {
    /* on the stack: worker threads answer their slow calls while the loop
     * thread answers others in C */
    union { struct seccomp_notif_resp r; char room[UML_RESP_MAX]; } u;
    memset(&u, 0, sizeof u);
    u.r.id = id;
    u.r.val = val;
    u.r.error = error;
    u.r.flags = flags;
    return ret_errno(ioctl(c->lfd, SECCOMP_IOCTL_NOTIF_SEND, &u.r));
}

int uml_notif_reply(struct uml_ctx *c, uint64_t id, int64_t val, int err) {
    return uml_send(c, id, err ? 0 : val, err ? -err : 0, 0);
}

int uml_notif_continue(struct uml_ctx *c, uint64_t id) {
    return uml_send(c, id, 0, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE);
}

int uml_notif_addfd(struct uml_ctx *c, uint64_t id, int srcfd, unsigned int newfd_flags) {
    struct seccomp_notif_addfd a;
    memset(&a, 0, sizeof a);
    a.id = id;
    a.flags = SECCOMP_ADDFD_FLAG_SEND;
    a.srcfd = (uint32_t)srcfd;
    a.newfd_flags = newfd_flags;
    int r = ioctl(c->lfd, SECCOMP_IOCTL_NOTIF_ADDFD, &a);
    return r < 0 ? -errno : r;
}

int uml_notif_valid(struct uml_ctx *c, uint64_t id) {
    return ioctl(c->lfd, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

/* ---- logs (fastattr.c, fastcreate.c, fastopen.c) ---- */

UML_INTERNAL int uml_log_room(void **log, uint32_t count, size_t entry, uint32_t max) {
    if (!*log) {
        *log = calloc(max, entry);
        if (!*log)
            return 0;
    }
    return count < max;
}

UML_INTERNAL int uml_logs_filling(struct uml_ctx *c) {
    return c->create_count >= UML_LOG_DRAIN || c->attr_count >= UML_LOG_DRAIN
           || c->open_count >= UML_LOG_DRAIN || c->exec_count >= UML_LOG_DRAIN;
}

UML_INTERNAL int uml_log_take(void *log, uint32_t *count, size_t entry, void *out, int max) {
    int n = (int)*count;
    if (n > max)
        n = max;
    if (n <= 0)
        return 0;
    memcpy(out, log, (size_t)n * entry);
    memmove(log, (char *)log + (size_t)n * entry, (*count - (uint32_t)n) * entry);
    *count -= (uint32_t)n;
    return n;
}
