/* source.h — frame sources for nnmask-live and nnmask-bench: a V4L2 camera
 * (libv4l2), a video file (libavformat/libavcodec, optional), a folder of
 * images; and a prefetch thread that reads the next frame while the
 * current one is processed.
 *
 * Every source delivers frames of one fixed size (w x h, 8-bit RGB): the
 * camera's negotiated size, or for files the requested size (--size) or,
 * without one, the size of the first frame (later frames are resized to it).
 * Errors a user can cause (missing/busy/unplugged camera, unreadable file)
 * return -1/NULL with nn_error() set to a clear message naming the device
 * or file; nothing here hangs: camera reads time out. */
#ifndef NN_LIVE_SOURCE_H
#define NN_LIVE_SOURCE_H

#include "nnmask.h"

typedef struct nn_source nn_source;
struct nn_source {
    /* 1 = a frame in *frame (frame->w/h == w/h, frame->rgb allocated by the
     * caller with nn_image_alloc(w, h)), 0 = end of the source, -1 = error. */
    int (*read)(nn_source *s, nn_image *frame);
    void (*close)(nn_source *s);
    int w, h;
    int live;          /* a camera: frames come in real time, drop old ones */
    int loop;          /* files: start again at the end */
    double fps;        /* nominal rate, 0 if unknown */
    char name[512];
};

/* Camera: w/h are the requested capture size (the driver may choose
 * another; s->w/h hold what it gave). timeout_ms: longest wait for one
 * frame before giving up (the first frame gets twice as long). */
nn_source *nn_source_open_camera(const char *dev, int w, int h, int timeout_ms);
/* w/h <= 0: keep the native size. */
nn_source *nn_source_open_video(const char *path, int w, int h, int loop);
nn_source *nn_source_open_frames(const char *dir, int w, int h, int loop);
/* A directory -> frames, a character device -> camera, else a video file. */
nn_source *nn_source_open(const char *path, int w, int h, int loop);
int nn_source_have_video(void);     /* built with libavformat/libavcodec */
int nn_source_have_camera(void);    /* built with libv4l2 */
static inline void nn_source_close(nn_source *s) {
    if (s) s->close(s);
}

/* Prefetch: a thread reads frames into a small ring of buffers. For a live
 * source only the newest frame is kept (the display never lags behind the
 * camera); for files every frame is delivered, in order. */
typedef struct nn_prefetch nn_prefetch;
nn_prefetch *nn_prefetch_start(nn_source *s);
/* 1 = *frame points to the next frame (valid until the next call or stop),
 * 0 = end, -1 = error (nn_error()). Waits for the reader thread. */
int nn_prefetch_next(nn_prefetch *p, nn_image **frame);
/* Seconds the last nn_prefetch_next waited, and the reader thread's time
 * per frame (capture/decode), for the bench. */
double nn_prefetch_wait_seconds(const nn_prefetch *p);
double nn_prefetch_read_seconds(const nn_prefetch *p);
void nn_prefetch_stop(nn_prefetch *p);   /* joins the thread; does not close s */

double nn_now(void);   /* monotonic seconds */

#endif
