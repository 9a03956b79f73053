#include <stdio.h>
#include <unistd.h>
/* A dynamic guest for the stub: main calls into libc (puts, then write). */
static const char *greeting = "hello from a dynamic guest";
int main(void) {
    puts(greeting);
    fflush(stdout);
    write(1, "done\n", 5);
    return 0;
}
