/* Shared harness for umlpy benchmark guests.
 *
 * Every guest times its own loop with clock_gettime(CLOCK_MONOTONIC) so the
 * number excludes process start-up and sandbox set-up, and prints one line
 *   umlpy-bench name=NAME iters=N ns_total=T ns_per_op=X
 * that umlpy/bench/workloads.py parses (key=value, so later guests can add
 * keys such as mib_per_s without breaking the parser).
 */
#ifndef UMLPY_BENCH_H
#define UMLPY_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Untimed calls before the timed loop: the first calls of a syscall may take
 * slow paths (page faults, a supervisor filling its caches) that are not what
 * a per-operation cost should measure. */
#define BENCH_WARMUP 200

static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Iteration count from argv[1], or the default. */
static inline long bench_iters(int argc, char **argv, long dflt)
{
    if (argc > 1) {
        long n = strtol(argv[1], NULL, 10);
        if (n > 0)
            return n;
    }
    return dflt;
}

static inline void bench_report(const char *name, long iters, uint64_t ns_total)
{
    printf("umlpy-bench name=%s iters=%ld ns_total=%llu ns_per_op=%.2f\n",
           name, iters, (unsigned long long)ns_total,
           (double)ns_total / (double)iters);
    fflush(stdout);
}

#endif
