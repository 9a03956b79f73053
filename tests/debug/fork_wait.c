#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
    pid_t child = fork();
    if (child == 0) {
        write(1, "child\n", 6);
        _exit(3);
    }
    int status = 0;
    wait4(child, &status, 0, NULL);
    printf("parent saw %d\n", WEXITSTATUS(status));
    return 0;
}
