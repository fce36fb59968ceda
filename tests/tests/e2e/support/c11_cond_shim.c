/*
 * Preloaded before libfaketime into a region node whose clock a test sets back.
 *
 * librdkafka waits on C11 condition variables with deadlines on the wall clock. glibc's
 * cnd_timedwait calls its pthread implementation internally, so libfaketime (which converts
 * the faked deadlines of pthread_cond_timedwait back to real time) never sees those waits: a
 * deadline on a clock set back lies in the past, every wait returns at once, and librdkafka's
 * wait loops miss the wake-ups meant for them (its requests time out, or hang). Routing
 * cnd_timedwait through the exported pthread_cond_timedwait lets libfaketime convert it; on
 * glibc a cnd_t is a pthread_cond_t and an mtx_t a pthread_mutex_t.
 */
#include <errno.h>
#include <pthread.h>
#include <threads.h>

int cnd_timedwait(cnd_t *restrict cond, mtx_t *restrict mutex,
                  const struct timespec *restrict time_point) {
    int err = pthread_cond_timedwait((pthread_cond_t *)cond, (pthread_mutex_t *)mutex,
                                     time_point);
    return err == 0 ? thrd_success : err == ETIMEDOUT ? thrd_timedout : thrd_error;
}
