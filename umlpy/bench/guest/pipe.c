/* Pipe throughput: a child writes N rounds of 64 MiB through a pipe in
 * 64 KiB chunks, the parent reads them; timed in the parent, per round.
 * Both ends are plain read/write on a host pipe, so a sandbox that lets
 * fd I/O run natively should be close to 1.0. */
#include "bench.h"
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHUNK (64u << 10)
#define ROUND_BYTES (64ull << 20)

int main(int argc, char **argv)
{
    long rounds = bench_iters(argc, argv, 3);
    static char buf[CHUNK];
    int fds[2];
    if (pipe(fds) != 0)
        return 1;
    uint64_t total = ROUND_BYTES * (uint64_t)rounds;
    uint64_t t0 = bench_now_ns();
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        close(fds[0]);
        memset(buf, 'x', sizeof buf);
        for (uint64_t sent = 0; sent < total;) {
            ssize_t n = write(fds[1], buf, sizeof buf);
            if (n <= 0)
                _exit(1);
            sent += (uint64_t)n;
        }
        _exit(0);
    }
    close(fds[1]);
    uint64_t got = 0;
    for (;;) {
        ssize_t n = read(fds[0], buf, sizeof buf);
        if (n <= 0)
            break;
        got += (uint64_t)n;
    }
    int status;
    waitpid(pid, &status, 0);
    uint64_t t1 = bench_now_ns();
    if (got != total || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "pipe: got %llu of %llu bytes\n",
                (unsigned long long)got, (unsigned long long)total);
        return 1;
    }
    bench_report("pipe", rounds, t1 - t0);
    return 0;
}
