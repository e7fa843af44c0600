/* source.c — picks the frame source for a path, and the prefetch thread
 * that reads frame i+1 while frame i is detected, classified and drawn. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "source.h"

double nn_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

nn_source *nn_source_open(const char *path, int w, int h, int loop) {
    struct stat st;
    if (stat(path, &st) != 0) {
        nn_set_error("%s: %s", path, strerror(errno));
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) return nn_source_open_frames(path, w, h, loop);
    if (S_ISCHR(st.st_mode)) return nn_source_open_camera(path, w, h, 0);
    return nn_source_open_video(path, w, h, loop);
}

/* ---- prefetch ---- */

#define PF_SLOTS 4
enum { SLOT_FREE, SLOT_FILLING, SLOT_QUEUED, SLOT_HELD };

struct nn_prefetch {
    nn_source *src;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    nn_image slot[PF_SLOTS];
    int state[PF_SLOTS];
    int queue[PF_SLOTS], qhead, qlen;
    int held;
    int done;        /* 0 running, 1 end, -1 error */
    int stop;
    char err[1024];
    double read_s, wait_s;
    long dropped;
};

static void *prefetch_main(void *arg) {
    nn_prefetch *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        int i = -1;
        while (!p->stop) {
            for (int k = 0; k < PF_SLOTS; k++)
                if (p->state[k] == SLOT_FREE) {
                    i = k;
                    break;
                }
            if (i >= 0) break;
            pthread_cond_wait(&p->cv, &p->mu);
        }
        if (p->stop) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        p->state[i] = SLOT_FILLING;
        pthread_mutex_unlock(&p->mu);

        double t0 = nn_now();
        int r = p->src->read(p->src, &p->slot[i]);
        double dt = nn_now() - t0;

        pthread_mutex_lock(&p->mu);
        p->read_s = dt;
        if (r == 1) {
            if (p->src->live) {   /* keep only the newest frame */
                while (p->qlen > 0) {
                    p->state[p->queue[p->qhead]] = SLOT_FREE;
                    p->qhead = (p->qhead + 1) % PF_SLOTS;
                    p->qlen--;
                    p->dropped++;
                }
            }
            p->queue[(p->qhead + p->qlen) % PF_SLOTS] = i;
            p->qlen++;
            p->state[i] = SLOT_QUEUED;
        } else {
            p->state[i] = SLOT_FREE;
            p->done = r < 0 ? -1 : 1;
            if (r < 0) snprintf(p->err, sizeof p->err, "%s", nn_error());
        }
        int finished = p->done != 0;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        if (finished) return NULL;
    }
}

nn_prefetch *nn_prefetch_start(nn_source *s) {
    nn_prefetch *p = calloc(1, sizeof *p);
    if (!p) {
        nn_set_error("out of memory");
        return NULL;
    }
    p->src = s;
    p->held = -1;
    for (int k = 0; k < PF_SLOTS; k++) {
        if (nn_image_alloc(&p->slot[k], s->w, s->h)) {
            for (int j = 0; j < k; j++) nn_image_free(&p->slot[j]);
            free(p);
            return NULL;
        }
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (pthread_create(&p->thread, NULL, prefetch_main, p) != 0) {
        nn_set_error("cannot start the frame reader thread");
        for (int k = 0; k < PF_SLOTS; k++) nn_image_free(&p->slot[k]);
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
        free(p);
        return NULL;
    }
    return p;
}

int nn_prefetch_next(nn_prefetch *p, nn_image **frame) {
    double t0 = nn_now();
    pthread_mutex_lock(&p->mu);
    if (p->held >= 0) {
        p->state[p->held] = SLOT_FREE;
        p->held = -1;
        pthread_cond_broadcast(&p->cv);
    }
    while (p->qlen == 0 && p->done == 0) pthread_cond_wait(&p->cv, &p->mu);
    int r;
    if (p->qlen > 0) {
        int i = p->queue[p->qhead];
        p->qhead = (p->qhead + 1) % PF_SLOTS;
        p->qlen--;
        p->state[i] = SLOT_HELD;
        p->held = i;
        *frame = &p->slot[i];
        r = 1;
    } else {
        *frame = NULL;
        r = p->done < 0 ? -1 : 0;
        if (r < 0) nn_set_error("%s", p->err);
    }
    pthread_mutex_unlock(&p->mu);
    p->wait_s = nn_now() - t0;
    return r;
}

double nn_prefetch_wait_seconds(const nn_prefetch *p) { return p->wait_s; }
double nn_prefetch_read_seconds(const nn_prefetch *p) {
    nn_prefetch *q = (nn_prefetch *)p;
    pthread_mutex_lock(&q->mu);
    double s = q->read_s;
    pthread_mutex_unlock(&q->mu);
    return s;
}

void nn_prefetch_stop(nn_prefetch *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    for (int k = 0; k < PF_SLOTS; k++) nn_image_free(&p->slot[k]);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}
