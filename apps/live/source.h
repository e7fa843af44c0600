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

#include <stdint.h>
#include <sys/select.h>   /* fd_set, struct timeval: nn_v4l2_ops (tests) */
#include <sys/types.h>

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

/* ---- for tests only (tests/test_v4l2_fake.c): programs never call this ----
 * The system calls the camera source makes, so that a test can play a fake
 * V4L2 device (busy, unplugged, stalled, odd formats). Members left NULL, or
 * ops == NULL, use the real calls: open, close, ioctl (the raw QUERYCAP),
 * libv4l2's v4l2_fd_open/v4l2_close/v4l2_ioctl/v4l2_mmap/v4l2_munmap/
 * v4l2_read, select. Set it only while no camera source is open. Does
 * nothing in builds without libv4l2. */
typedef struct nn_v4l2_ops {
    int (*open)(const char *path, int flags);
    int (*close)(int fd);
    int (*ioctl)(int fd, unsigned long req, void *arg);
    int (*v4l2_fd_open)(int fd, int v4l2_flags);
    int (*v4l2_close)(int fd);
    int (*v4l2_ioctl)(int fd, unsigned long req, void *arg);
    void *(*v4l2_mmap)(void *start, size_t len, int prot, int flags, int fd, int64_t offset);
    int (*v4l2_munmap)(void *start, size_t len);
    ssize_t (*v4l2_read)(int fd, void *buf, size_t n);
    int (*select)(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *timeout);
} nn_v4l2_ops;
void nn_source_set_v4l2_ops_for_tests(const nn_v4l2_ops *ops);

#endif
