#include <stdio.h>
#include <unistd.h>
/* Runs until the file argv[1] exists (gdb attaches meanwhile), then says how
   many rounds it made. */
volatile int rounds;
int main(int argc, char **argv) {
    while (argc > 1 && access(argv[1], F_OK) != 0) {
        usleep(10000);
        rounds++;
    }
    printf("finished after %s\n", rounds > 0 ? "a while" : "no time");
    return 0;
}
