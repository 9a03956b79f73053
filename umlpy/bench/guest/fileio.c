/* File-system workloads of the VFS issue, each timed in the guest:
 *
 *   fileio MODE ITERS DIR
 *
 *   pread      pread of 64 bytes at offset 0 of a 4 KiB file     (per call)
 *   openclose  open + close of an existing file                  (per pair)
 *   stat       stat of an existing file                          (per call)
 *   bigio      write 64 MiB in 1 MiB chunks, fsync, read it back (per round)
 *   files      create ITERS files, list them with a stat each (ls -l), remove
 *              them                                              (per file)
 *
 * DIR is a scratch directory the program may fill; both sides get a tmpfs
 * (the host's /dev/shm natively, the guest kernel's /dev/shm in umlpy).
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"

static char path_buf[4096];

static const char *in_dir(const char *dir, const char *name)
{
    snprintf(path_buf, sizeof path_buf, "%s/%s", dir, name);
    return path_buf;
}

static int make_file(const char *path, size_t size)
{
    int fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0644);
    if (fd < 0) {
        perror(path);
        exit(1);
    }
    char block[4096];
    memset(block, 'x', sizeof block);
    for (size_t done = 0; done < size; done += sizeof block)
        if (write(fd, block, sizeof block) != sizeof block) {
            perror("write");
            exit(1);
        }
    return fd;
}

static void fail(const char *what)
{
    perror(what);
    exit(1);
}

static void bench_pread(long iters, const char *dir)
{
    char buf[64];
    int fd = make_file(in_dir(dir, "pread"), 4096);
    for (int i = 0; i < BENCH_WARMUP; i++)
        pread(fd, buf, sizeof buf, 0);
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < iters; i++)
        if (pread(fd, buf, sizeof buf, 0) != sizeof buf)
            fail("pread");
    bench_report("pread", iters, bench_now_ns() - t0);
    close(fd);
}

static void bench_openclose(long iters, const char *dir)
{
    close(make_file(in_dir(dir, "opened"), 0));
    for (int i = 0; i < BENCH_WARMUP; i++)
        close(open(path_buf, O_RDONLY));
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < iters; i++) {
        int fd = open(path_buf, O_RDONLY);
        if (fd < 0)
            fail("open");
        close(fd);
    }
    bench_report("openclose", iters, bench_now_ns() - t0);
}

static void bench_stat(long iters, const char *dir)
{
    struct stat st;
    close(make_file(in_dir(dir, "statted"), 0));
    for (int i = 0; i < BENCH_WARMUP; i++)
        stat(path_buf, &st);
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < iters; i++)
        if (stat(path_buf, &st) != 0)
            fail("stat");
    bench_report("stat", iters, bench_now_ns() - t0);
}

static void bench_bigio(long iters, const char *dir)
{
    enum { CHUNK = 1 << 20, TOTAL = 64 << 20 };
    char *buf = malloc(CHUNK);
    memset(buf, 'y', CHUNK);
    uint64_t t0 = bench_now_ns();
    for (long r = 0; r < iters; r++) {
        int fd = open(in_dir(dir, "big"), O_CREAT | O_TRUNC | O_RDWR, 0644);
        if (fd < 0)
            fail("open big");
        for (long done = 0; done < TOTAL; done += CHUNK)
            if (write(fd, buf, CHUNK) != CHUNK)
                fail("write big");
        fsync(fd);
        lseek(fd, 0, SEEK_SET);
        for (long done = 0; done < TOTAL; done += CHUNK)
            if (read(fd, buf, CHUNK) != CHUNK)
                fail("read big");
        close(fd);
        unlink(path_buf);
    }
    bench_report("bigio", iters, bench_now_ns() - t0);
    free(buf);
}

static void bench_files(long iters, const char *dir)
{
    char name[64];
    struct stat st;
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < iters; i++) {
        snprintf(name, sizeof name, "f%05ld", i);
        int fd = open(in_dir(dir, name), O_CREAT | O_EXCL | O_WRONLY, 0644);
        if (fd < 0)
            fail("create");
        close(fd);
    }
    DIR *d = opendir(dir);
    if (!d)
        fail("opendir");
    long seen = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            fail("lstat");
        seen++;
    }
    closedir(d);
    for (long i = 0; i < iters; i++) {
        snprintf(name, sizeof name, "f%05ld", i);
        if (unlink(in_dir(dir, name)) != 0)
            fail("unlink");
    }
    if (seen != iters) {
        fprintf(stderr, "listed %ld of %ld files\n", seen, iters);
        exit(1);
    }
    bench_report("files", iters, bench_now_ns() - t0);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: fileio pread|openclose|stat|bigio|files ITERS DIR\n");
        return 2;
    }
    long iters = bench_iters(argc - 1, argv + 1, 1000);
    const char *dir = argv[3];
    if (mkdir(dir, 0755) != 0)
        fail(dir);
    static const struct { const char *mode; void (*run)(long, const char *); } modes[] = {
        {"pread", bench_pread}, {"openclose", bench_openclose}, {"stat", bench_stat},
        {"bigio", bench_bigio}, {"files", bench_files},
    };
    for (unsigned i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (strcmp(argv[1], modes[i].mode) == 0) {
            modes[i].run(iters, dir);
            static const char *left[] = {"pread", "opened", "statted"};
            for (unsigned j = 0; j < sizeof left / sizeof left[0]; j++)
                unlink(in_dir(dir, left[j]));
            rmdir(dir);
            return 0;
        }
    fprintf(stderr, "fileio: unknown mode %s\n", argv[1]);
    return 2;
}
