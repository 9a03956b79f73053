/* The line protocol of the step-by-step security probes (escape.c, mnt.c):
 * one command a line on stdin ("OP ARG..."; blank lines and '#' comments are
 * skipped), one answer a line on stdout: "LINENO OP -> OK[:TEXT]" or
 * "LINENO OP -> ERRNAME". The includer defines _GNU_SOURCE (strerrorname_np). */
#ifndef UMLPY_PROBE_H
#define UMLPY_PROBE_H

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int lineno;

static void result(const char *op, int ok, const char *text)
{
    if (ok)
        printf("%d %s -> OK%s%s\n", lineno, op, text ? ":" : "", text ? text : "");
    else
        printf("%d %s -> %s\n", lineno, op, strerrorname_np(errno) ? strerrorname_np(errno) : "E?");
    fflush(stdout);
}

/* The next command's words in a[0..max) (cut inside `line`); their number,
 * or 0 at the end of input. */
static int next_command(char *line, int size, char **a, int max)
{
    while (fgets(line, size, stdin)) {
        int n = 0;
        memset(a, 0, sizeof *a * max);
        lineno++;
        line[strcspn(line, "\n")] = 0;
        for (char *tok = strtok(line, " "); tok && n < max; tok = strtok(NULL, " "))
            a[n++] = tok;
        if (n == 0 || a[0][0] == '#') {
            lineno--;
            continue;
        }
        errno = 0;
        return n;
    }
    return 0;
}

#endif
