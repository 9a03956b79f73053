#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
static volatile int ready;
void *worker(void *arg) {
    ready = 1;
    while (ready == 1)
        usleep(1000);
    return arg;
}
void checkpoint(void) { ready = 2; }
int main(void) {
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    while (!ready)
        usleep(1000);
    checkpoint();
    pthread_join(t, NULL);
    puts("joined");
    return 0;
}
