#include <fcntl.h>
#include <unistd.h>
#include <string.h>
int main(void) {
    const char msg[] = "hello\n";
    int fd = open("/tmp/umlpy-trace-known", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    write(fd, msg, strlen(msg));
    close(fd);
    unlink("/tmp/umlpy-trace-known");
    open("/nonexistent/x", O_RDONLY);
    getpid();
    write(1, "done\n", 5);
    return 0;
}
