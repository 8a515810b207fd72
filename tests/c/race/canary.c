/* scripts/race.sh runs this first: two threads increment a plain counter, a data race that
 * ThreadSanitizer must report. If it stays silent here, a silent run of the real programs proves
 * nothing. */
#include <pthread.h>

static int counter;

static void *bump(void *arg) {
    (void)arg;
    for (int i = 0; i < 1000; i++)
        counter++;
    return NULL;
}

int main(void) {
    pthread_t a, b;
    pthread_create(&a, NULL, bump, NULL);
    pthread_create(&b, NULL, bump, NULL);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    return counter == 0;
}
