/* For the tests' C programs: the scratch directory they are given and
 * names in it (four at a time may be in use, as in rename(at(a), at(b))). */
#ifndef UMLPY_TESTS_SCRATCHDIR_H
#define UMLPY_TESTS_SCRATCHDIR_H
#include <stdio.h>

static char dir[512];

static const char *at(const char *name) {
    static char buf[4][1024];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", dir, name);
    return buf[i];
}
#endif
