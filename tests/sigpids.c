/* The pids a process learns of its children and senders: fork's result,
 * wait4's, and si_pid in the siginfo of a delivered SIGCHLD or kill().
 * Prints relations (not pids), so its output is the same natively and in a
 * guest; exits 1 at the first step that goes wrong. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t got_signo, got_pid, got_code, got_status, chld_count;

static void on_signal(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    got_signo = sig;
    got_pid = si->si_pid;
    got_code = si->si_code;
    got_status = si->si_status;
    if (sig == SIGCHLD)
        chld_count++;
}

static void wait_for(int sig) {
    sigset_t none;
    sigemptyset(&none);
    while (got_signo != sig)
        sigsuspend(&none);
}

static void check(int ok, const char *what) {
    printf("%s %s\n", ok ? "ok" : "FAIL", what);
    fflush(stdout);
    if (!ok)
        exit(1);
}

int main(int argc, char **argv) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGCHLD, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigaddset(&chld, SIGUSR1);

    if (argc > 1 && strcmp(argv[1], "outside") == 0) {
        /* a sender outside the guest (the test, from the host) shows as 0 */
        sigprocmask(SIG_BLOCK, &chld, &old);
        printf("ready\n");
        fflush(stdout);
        sigprocmask(SIG_SETMASK, &old, NULL);
        wait_for(SIGUSR1);
        check(got_pid == 0 && got_code == SI_USER, "a sender outside shows as pid 0");
        return 0;
    }

    /* 1. a child exits; a blocking wait4(-1) reaps it, then SIGCHLD comes */
    pid_t a = fork();
    if (a == 0)
        _exit(7);
    int status = 0;
    pid_t w = waitpid(-1, &status, 0);
    check(w == a && WIFEXITED(status) && WEXITSTATUS(status) == 7, "wait4(-1) gives the child");
    sigprocmask(SIG_BLOCK, &chld, &old);
    sigprocmask(SIG_SETMASK, &old, NULL);      /* a pending SIGCHLD is delivered here */
    check(chld_count == 1 && got_pid == a && got_code == CLD_EXITED && got_status == 7,
          "SIGCHLD after the reap names the child");

    /* 2. a live child sends SIGUSR1 to its parent */
    sigprocmask(SIG_BLOCK, &chld, &old);
    got_signo = 0;
    pid_t b = fork();
    if (b == 0) {
        kill(getppid(), SIGUSR1);
        pause();
        _exit(0);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    wait_for(SIGUSR1);
    check(got_pid == b && got_code == SI_USER, "kill's si_pid is the sender");

    /* 3. it is stopped: wait4(-1, WUNTRACED) without a status pointer */
    kill(b, SIGSTOP);
    w = waitpid(-1, NULL, WUNTRACED);
    check(w == b, "wait4(-1, NULL, WUNTRACED) gives the stopped child");
    kill(b, SIGCONT);
    kill(b, SIGKILL);
    w = waitpid(-1, &status, 0);
    check(w == b && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
          "then its death by SIGKILL");

    /* 4. many in a row: host pids and guest pids come back again */
    int bad = 0;
    for (int i = 0; i < 300; i++) {
        pid_t c = fork();
        if (c == 0)
            _exit(i & 0x7f);
        w = waitpid(-1, &status, 0);
        if (w != c || !WIFEXITED(status) || WEXITSTATUS(status) != (i & 0x7f))
            bad++;
    }
    check(bad == 0, "300 forks, each reaped by wait4(-1) with its own pid and status");

    /* 5. SIGCHLD of a child still unreaped, before the wait */
    sigprocmask(SIG_BLOCK, &chld, &old);
    got_signo = 0;
    pid_t d = fork();
    if (d == 0)
        _exit(3);
    sigprocmask(SIG_SETMASK, &old, NULL);
    wait_for(SIGCHLD);
    check(got_pid == d && got_code == CLD_EXITED && got_status == 3,
          "SIGCHLD before the reap names the child");
    w = waitpid(-1, &status, 0);
    check(w == d && WEXITSTATUS(status) == 3, "and wait4 reaps it");
    w = waitpid(-1, &status, WNOHANG);
    check(w == -1, "no child left");
    return 0;
}
