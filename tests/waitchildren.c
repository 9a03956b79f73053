/* wait4 around "no children": ECHILD when a process has none (which the
 * accelerator answers at the call's entry), and every case where it has one
 * after all: a child still running, one a thread made, an orphan handed to
 * the first process, a child reaped then another forked. Prints results and
 * relations (not pids), so its output is the same natively and in a guest,
 * where this program is the first process; natively it makes itself a child
 * subreaper to match. Exits 1 at the first step that goes wrong. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static void say(const char *what, long r) {
    if (r < 0)
        printf("%s: %s\n", what, strerrorname_np(errno));
    else
        printf("%s: %ld\n", what, r);
    fflush(stdout);
}

static void check(int ok, const char *what) {
    printf("%s %s\n", ok ? "ok" : "FAIL", what);
    fflush(stdout);
    if (!ok)
        exit(1);
}

/* a child that waits until pipe `gate` is closed at its other end (by
 * whoever else holds that), then exits with `code` */
static pid_t gated_child(const int gate[2], int code) {
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        close(gate[1]);
        while (read(gate[0], &c, 1) > 0) {}
        _exit(code);
    }
    close(gate[0]);
    return pid;
}

static void *thread_forks(void *arg) {
    pid_t pid = fork();
    if (pid == 0)
        _exit(3);
    *(pid_t *)arg = pid;
    return NULL;
}

int main(void) {
    int status;
    prctl(PR_SET_CHILD_SUBREAPER, 1);     /* natively; the guest's first process is one */

    say("none, WNOHANG", wait4(-1, &status, WNOHANG, NULL));
    say("none, blocking", wait4(-1, &status, 0, NULL));
    say("none, a pid", wait4(12345, &status, 0, NULL));
    say("none, a group", wait4(0, &status, WNOHANG, NULL));
    say("none, __WALL", wait4(-1, NULL, __WALL | WNOHANG, NULL));
    say("none, INT_MIN", wait4(INT_MIN, &status, 0, NULL));
    say("none, bad options", wait4(-1, &status, 0x40000000 >> 8, NULL));

    int gate[2];
    if (pipe(gate) != 0)
        return 1;
    pid_t kid = gated_child(gate, 7);
    say("running child, WNOHANG", wait4(-1, &status, WNOHANG, NULL));
    close(gate[1]);
    check(wait4(-1, &status, 0, NULL) == kid && WEXITSTATUS(status) == 7, "reaped the child");
    say("reaped, WNOHANG", wait4(-1, &status, WNOHANG, NULL));

    int echild = 0;
    for (int i = 0; i < 50; i++) {
        pid_t p = fork();
        if (p == 0)
            _exit(i & 0x7f);
        if (wait4(-1, &status, 0, NULL) != p || WEXITSTATUS(status) != (i & 0x7f))
            check(0, "fork, exit, wait4");
        echild += wait4(-1, &status, WNOHANG, NULL) < 0 && errno == ECHILD;
    }
    check(echild == 50, "50 forks: each one's wait4(WNOHANG) after the reap fails ECHILD");

    pthread_t t;
    pid_t by_thread = 0;
    pthread_create(&t, NULL, thread_forks, &by_thread);
    pthread_join(t, NULL);
    check(wait4(-1, &status, 0, NULL) == by_thread && WEXITSTATUS(status) == 3,
          "a thread's child is the process's");
    say("after the thread's child, WNOHANG", wait4(-1, &status, WNOHANG, NULL));

    /* an orphan: a child forks a grandchild, says its pid and exits */
    int report[2], grand_gate[2];
    if (pipe(report) != 0 || pipe(grand_gate) != 0)
        return 1;
    pid_t middle = fork();
    if (middle == 0) {
        pid_t g = gated_child(grand_gate, 9);     /* init holds the gate's other end */
        if (write(report[1], &g, sizeof g) != sizeof g)
            _exit(1);
        _exit(0);
    }
    close(grand_gate[0]);
    pid_t grandchild = 0;
    if (read(report[0], &grandchild, sizeof grandchild) != sizeof grandchild)
        return 1;
    check(waitpid(middle, &status, 0) == middle, "reaped the middle child");
    say("orphan running, WNOHANG", wait4(-1, &status, WNOHANG, NULL));
    close(grand_gate[1]);
    check(wait4(-1, &status, 0, NULL) == grandchild && WEXITSTATUS(status) == 9,
          "the orphan came to the first process");
    say("all reaped, WNOHANG", wait4(-1, &status, WNOHANG, NULL));
    return 0;
}
