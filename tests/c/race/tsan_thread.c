/* Linked into every program scripts/race.sh builds. ThreadSanitizer starts a background thread
 * of its own at the program's first pthread_create; starting one before main makes that thread
 * part of the baseline the programs measure (tests/c/scale.c checks that the thread count comes
 * back to it after freeing every client). */
#include <pthread.h>

static void *nothing(void *arg) {
    return arg;
}

__attribute__((constructor)) static void start_tsan_background_thread(void) {
    pthread_t t;
    if (pthread_create(&t, NULL, nothing, NULL) == 0)
        pthread_join(t, NULL);
}
