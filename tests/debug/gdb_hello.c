#include <stdio.h>
#include <string.h>
static const char *greeting = "hello from the guest";
int square(int x) { return x * x; }
int main(void) {
    int n = square(7);
    size_t len = strlen(greeting);
    printf("%s %d %zu\n", greeting, n, len);
    return 0;
}
