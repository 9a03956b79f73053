/* A guest tracer reaching outside what it may trace: every line must say
 * ESRCH or EPERM. argv[1]: a host pid that is no guest's. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

static void try(const char *what, long r) {
    printf("%s: %s\n", what, r == 0 ? "ok" : strerror(errno));
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    pid_t host = argc > 1 ? atoi(argv[1]) : 999999;
    try("attach host pid", ptrace(PTRACE_ATTACH, host, 0, 0));
    try("seize host pid", ptrace(PTRACE_SEIZE, host, 0, 0));
    try("attach pid 0", ptrace(PTRACE_ATTACH, 0, 0, 0));
    try("attach pid -1", ptrace(PTRACE_ATTACH, -1, 0, 0));
    try("attach self", ptrace(PTRACE_ATTACH, getpid(), 0, 0));
    try("attach parent", ptrace(PTRACE_ATTACH, getppid(), 0, 0));
    try("poke host pid", ptrace(PTRACE_POKEDATA, host, (void *)0x1000, (void *)1));
    pid_t c = fork();
    if (c == 0) {
        pause();
        _exit(0);
    }
    /* a child it does not trace: no memory, no registers, no resume */
    try("poke untraced child", ptrace(PTRACE_POKEDATA, c, (void *)0x1000, (void *)1));
    try("cont untraced child", ptrace(PTRACE_CONT, c, 0, 0));
    /* a non-root tracer cannot take a root process */
    pid_t d = fork();
    if (d == 0) {
        if (setuid(1000) != 0)
            _exit(2);
        printf("attach root as uid 1000: %s\n",
               ptrace(PTRACE_ATTACH, c, 0, 0) == 0 ? "ok" : strerror(errno));
        fflush(stdout);
        _exit(0);
    }
    waitpid(d, NULL, 0);
    /* a second tracer for a traced task */
    try("attach child", ptrace(PTRACE_ATTACH, c, 0, 0));
    int st;
    waitpid(c, &st, 0);
    printf("child stopped: %d\n", WIFSTOPPED(st) ? WSTOPSIG(st) : -1);
    pid_t e = fork();
    if (e == 0) {
        printf("attach traced task: %s\n",
               ptrace(PTRACE_ATTACH, c, 0, 0) == 0 ? "ok" : strerror(errno));
        fflush(stdout);
        _exit(0);
    }
    waitpid(e, NULL, 0);
    kill(c, SIGKILL);
    ptrace(PTRACE_CONT, c, 0, 0);
    waitpid(c, &st, 0);
    printf("child end: %s\n", WIFSIGNALED(st) ? "killed" : "other");
    return 0;
}
