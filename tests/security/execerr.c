/* execerr PATH...: execve each PATH (argv {PATH}, no environment) in a child
 * and print "<path> -> OK|ERRNO" (OK: the program ran and exited 0), or the
 * signal that ended the child ("SIGSEGV"), for test_faults.py. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 1; i < argc; i++) {
        int pipefd[2];
        if (pipe2(pipefd, O_CLOEXEC) < 0)
            return 1;
        pid_t p = fork();
        if (p == 0) {
            char *args[] = {argv[i], NULL}, *env[] = {NULL};
            execve(argv[i], args, env);
            int e = errno;
            write(pipefd[1], &e, sizeof e);
            _exit(127);
        }
        close(pipefd[1]);
        int e = 0, status = 0;
        ssize_t n = read(pipefd[0], &e, sizeof e);
        close(pipefd[0]);
        waitpid(p, &status, 0);
        if (n == sizeof e)
            printf("%s -> %s\n", argv[i], strerrorname_np(e));
        else if (WIFSIGNALED(status))
            printf("%s -> %s\n", argv[i], sigabbrev_np(WTERMSIG(status)));
        else
            printf("%s -> %s%d\n", argv[i], WEXITSTATUS(status) ? "EXIT" : "OK", WEXITSTATUS(status));
    }
    return 0;
}
