/* getpid round trip: the cheapest syscall, so it measures pure interception
 * cost. syscall(SYS_getpid) rather than getpid() so no libc can cache it. */
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"

int main(int argc, char **argv)
{
    long iters = bench_iters(argc, argv, 20000);

    for (int i = 0; i < BENCH_WARMUP; i++)
        syscall(SYS_getpid);

    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < iters; i++)
        syscall(SYS_getpid);
    uint64_t t1 = bench_now_ns();

    bench_report("getpid", iters, t1 - t0);
    return 0;
}
