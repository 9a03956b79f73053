/* Guest ptrace, checked against the host: the same lines natively and under
 * umlpy (only values both agree on are printed). */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile long shared_word = 0x1122334455667788L;

static void show(const char *what, int st) {
    if (WIFSTOPPED(st))
        printf("%s: stopped sig=%d event=%d\n", what, WSTOPSIG(st), st >> 16);
    else if (WIFEXITED(st))
        printf("%s: exited %d\n", what, WEXITSTATUS(st));
    else
        printf("%s: killed %d\n", what, WTERMSIG(st));
}

int main(void) {
    int st;
    pid_t c = fork();
    if (c == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        raise(SIGSTOP);
        syscall(SYS_getppid);
        if (fork() == 0)
            _exit(4);
        wait(NULL);
        _exit(shared_word == 42 ? 7 : 1);
    }
    waitpid(c, &st, 0);
    show("first stop", st);
    struct user_regs_struct r;
    long rc = ptrace(PTRACE_GETREGS, c, 0, &r);
    printf("getregs: %ld cs=%llx\n", rc, r.cs);
    errno = 0;
    long w = ptrace(PTRACE_PEEKDATA, c, (void *)&shared_word, 0);
    printf("peek: %lx errno=%d\n", w, errno);
    printf("poke: %ld\n", ptrace(PTRACE_POKEDATA, c, (void *)&shared_word, (void *)42L));
    errno = 0;
    ptrace(PTRACE_PEEKDATA, c, (void *)8, 0);
    printf("peek bad address: %s\n", strerror(errno));
    printf("peekuser cs: %lx\n", ptrace(PTRACE_PEEKUSER, c, (void *)offsetof(struct user_regs_struct, cs), 0));
    ptrace(PTRACE_SETOPTIONS, c, 0, PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACEFORK | PTRACE_O_TRACEEXIT);
    /* syscall stops of getppid: entry then exit, orig_rax the guest's call */
    ptrace(PTRACE_SYSCALL, c, 0, 0);
    waitpid(c, &st, 0);
    show("entry", st);
    ptrace(PTRACE_GETREGS, c, 0, &r);
    printf("entry nr=%lld rax=%lld\n", r.orig_rax, (long long)r.rax);
    ptrace(PTRACE_SYSCALL, c, 0, 0);
    waitpid(c, &st, 0);
    show("exit", st);
    ptrace(PTRACE_GETREGS, c, 0, &r);
    printf("exit nr=%lld ppid-ok=%d\n", r.orig_rax, (pid_t)r.rax == getpid());
    /* fork event, the new child auto-attached with its own first stop */
    ptrace(PTRACE_CONT, c, 0, 0);
    pid_t p = waitpid(c, &st, 0);
    show("fork event", st);
    unsigned long msg = 0;
    ptrace(PTRACE_GETEVENTMSG, c, 0, &msg);
    pid_t g = (pid_t)msg;
    p = waitpid(g, &st, __WALL);
    printf("grandchild is %s\n", p == g ? "reported" : "missing");
    show("grandchild", st);
    ptrace(PTRACE_CONT, g, 0, 0);
    waitpid(g, &st, __WALL);
    show("grandchild exit event", st);
    ptrace(PTRACE_CONT, g, 0, 0);
    waitpid(g, &st, __WALL);
    show("grandchild end", st);
    printf("request on a dead tracee: %s\n",
           ptrace(PTRACE_CONT, g, 0, 0) == 0 ? "ok" : strerror(errno));
    ptrace(PTRACE_CONT, c, 0, 0);
    waitpid(c, &st, 0);
    show("exit event", st);
    ptrace(PTRACE_GETEVENTMSG, c, 0, &msg);
    printf("exit msg: %lx\n", msg);
    ptrace(PTRACE_CONT, c, 0, 0);
    waitpid(c, &st, 0);
    show("end", st);
    return 0;
}
