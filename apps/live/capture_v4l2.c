/* capture_v4l2.c — a V4L2 camera as a frame source, through libv4l2 (which
 * converts YUYV/MJPEG to RGB24); every wait is a select() with a deadline. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "source.h"

#ifdef NN_HAVE_V4L2
#include <fcntl.h>
#include <linux/videodev2.h>
#include <libv4l2.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <unistd.h>

#define CAM_BUFFERS 4

/* Every system call below goes through this table, so that
 * tests/test_v4l2_fake.c can stand in for a camera that is busy, unplugged
 * or stalled; programs always use the real calls. */
static int real_open(const char *path, int flags) { return open(path, flags); }
static int real_ioctl(int fd, unsigned long req, void *arg) { return ioctl(fd, req, arg); }
static int real_v4l2_ioctl(int fd, unsigned long req, void *arg) {
    return v4l2_ioctl(fd, req, arg);
}
#define REAL_OPS                                                                      \
    {                                                                                 \
        .open = real_open, .close = close, .ioctl = real_ioctl,                       \
        .v4l2_fd_open = v4l2_fd_open, .v4l2_close = v4l2_close,                       \
        .v4l2_ioctl = real_v4l2_ioctl, .v4l2_mmap = v4l2_mmap,                        \
        .v4l2_munmap = v4l2_munmap, .v4l2_read = v4l2_read, .select = select,         \
    }
static const nn_v4l2_ops real_ops = REAL_OPS;
static nn_v4l2_ops ops = REAL_OPS;

void nn_source_set_v4l2_ops_for_tests(const nn_v4l2_ops *o) {
    ops = real_ops;
    if (!o) return;
#define TAKE(f) \
    if (o->f) ops.f = o->f
    TAKE(open);
    TAKE(close);
    TAKE(ioctl);
    TAKE(v4l2_fd_open);
    TAKE(v4l2_close);
    TAKE(v4l2_ioctl);
    TAKE(v4l2_mmap);
    TAKE(v4l2_munmap);
    TAKE(v4l2_read);
    TAKE(select);
#undef TAKE
}

typedef struct {
    nn_source base;
    int fd;
    int use_mmap, streaming;
    struct {
        void *start;
        size_t len;
    } buf[CAM_BUFFERS];
    int nbuf;
    int timeout_ms, got_first;
    unsigned bytesperline, sizeimage;
    uint8_t *readbuf;
} cam_source;

static int xioctl(int fd, unsigned long req, void *arg) {
    int r;
    do r = ops.v4l2_ioctl(fd, req, arg);
    while (r == -1 && errno == EINTR);
    return r;
}

static int cam_error(const cam_source *c, const char *what, int err) {
    const char *dev = c->base.name;
    switch (err) {
    case EBUSY:
        return nn_set_error("%s: camera is busy (another program is using it; close it "
                            "and try again)", dev);
    case ENODEV:
    case ENXIO:
    case EIO:
        return nn_set_error("%s: camera disconnected (%s: %s)", dev, what, strerror(err));
    case EACCES:
    case EPERM:
        return nn_set_error("%s: permission denied (%s; is your user in the 'video' "
                            "group?)", dev, what);
    default:
        return nn_set_error("%s: %s: %s", dev, what, strerror(err));
    }
}

static void copy_frame(cam_source *c, nn_image *frame, const uint8_t *src, size_t len) {
    size_t row = (size_t)c->base.w * 3;
    size_t bpl = c->bytesperline;
    for (int y = 0; y < c->base.h; y++) {
        uint8_t *d = frame->rgb + (size_t)y * row;
        size_t off = (size_t)y * bpl;
        if (off + row <= len) {
            memcpy(d, src + off, row);
        } else {   /* short frame: keep the rest black */
            memset(d, 0, row);
        }
    }
}

/* Waits until the camera is readable or the deadline passes: 1 ready, -1. */
static int cam_wait(cam_source *c, double deadline) {
    for (;;) {
        double left = deadline - nn_now();
        if (left <= 0) {
            return nn_set_error("%s: no frame from the camera for %.1f s (unplugged, "
                                "stalled, or held by another program?)",
                                c->base.name, c->timeout_ms * (c->got_first ? 1 : 2) / 1000.0);
        }
        fd_set rd, ex;
        FD_ZERO(&rd);
        FD_ZERO(&ex);
        FD_SET(c->fd, &rd);
        FD_SET(c->fd, &ex);
        struct timeval tv = {(time_t)left, (suseconds_t)((left - (time_t)left) * 1e6)};
        int r = ops.select(c->fd + 1, &rd, NULL, &ex, &tv);
        if (r < 0) {
            if (errno == EINTR) continue;
            return cam_error(c, "select", errno);
        }
        if (r > 0) return 1;
    }
}

/* select() said readable but there was nothing to read (EAGAIN): a driver
 * that keeps waking us up would make the loop spin until the deadline, so
 * wait a millisecond (never past the deadline) before asking again. */
static void cam_pause(double deadline) {
    double left = deadline - nn_now();
    if (left <= 0) return;
    if (left > 1e-3) left = 1e-3;
    struct timespec ts = {0, (long)(left * 1e9)};
    nanosleep(&ts, NULL);
}

static int cam_read(nn_source *s, nn_image *frame) {
    cam_source *c = (cam_source *)s;
    if (frame->w != s->w || frame->h != s->h || !frame->rgb)
        return nn_set_error("%s: frame buffer is %dx%d, camera gives %dx%d", s->name,
                            frame->w, frame->h, s->w, s->h);
    double deadline = nn_now() + c->timeout_ms / 1000.0 * (c->got_first ? 1 : 2);
    for (;;) {
        if (cam_wait(c, deadline) < 0) return -1;
        if (c->use_mmap) {
            struct v4l2_buffer b;
            memset(&b, 0, sizeof b);
            b.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
            b.memory = V4L2_MEMORY_MMAP;
            if (xioctl(c->fd, VIDIOC_DQBUF, &b) < 0) {
                if (errno == EAGAIN) {
                    cam_pause(deadline);
                    continue;
                }
                return cam_error(c, "reading a frame", errno);
            }
            if (b.index >= (unsigned)c->nbuf)
                return nn_set_error("%s: driver returned buffer %u of %d", s->name, b.index,
                                    c->nbuf);
            int bad = (b.flags & V4L2_BUF_FLAG_ERROR) != 0;
            /* never past the mapped buffer, whatever bytesused claims */
            size_t len = c->buf[b.index].len;
            if (b.bytesused && b.bytesused < len) len = b.bytesused;
            if (!bad) copy_frame(c, frame, c->buf[b.index].start, len);
            if (xioctl(c->fd, VIDIOC_QBUF, &b) < 0)
                return cam_error(c, "queueing a buffer", errno);
            if (bad) continue;   /* a corrupted frame: wait for the next one */
        } else {
            ssize_t n = ops.v4l2_read(c->fd, c->readbuf, c->sizeimage);
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN) {
                    cam_pause(deadline);
                    continue;
                }
                return cam_error(c, "reading a frame", errno);
            }
            if (n == 0) return cam_error(c, "reading a frame", ENODEV);
            copy_frame(c, frame, c->readbuf, (size_t)n);
        }
        c->got_first = 1;
        return 1;
    }
}

static void cam_close(nn_source *s) {
    cam_source *c = (cam_source *)s;
    if (c->fd >= 0) {
        if (c->streaming) {
            enum v4l2_buf_type t = V4L2_BUF_TYPE_VIDEO_CAPTURE;
            xioctl(c->fd, VIDIOC_STREAMOFF, &t);
        }
        for (int i = 0; i < c->nbuf; i++)
            if (c->buf[i].start && c->buf[i].start != MAP_FAILED)
                ops.v4l2_munmap(c->buf[i].start, c->buf[i].len);
        ops.v4l2_close(c->fd);
    }
    free(c->readbuf);
    free(c);
}

static int cam_setup_mmap(cam_source *c) {
    struct v4l2_requestbuffers rb;
    memset(&rb, 0, sizeof rb);
    rb.count = CAM_BUFFERS;
    rb.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    rb.memory = V4L2_MEMORY_MMAP;
    if (xioctl(c->fd, VIDIOC_REQBUFS, &rb) < 0) return cam_error(c, "requesting buffers", errno);
    if (rb.count < 1) return nn_set_error("%s: the driver gave no capture buffers", c->base.name);
    c->nbuf = rb.count > CAM_BUFFERS ? CAM_BUFFERS : (int)rb.count;
    for (int i = 0; i < c->nbuf; i++) {
        struct v4l2_buffer b;
        memset(&b, 0, sizeof b);
        b.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
        b.memory = V4L2_MEMORY_MMAP;
        b.index = (unsigned)i;
        if (xioctl(c->fd, VIDIOC_QUERYBUF, &b) < 0) return cam_error(c, "querying a buffer", errno);
        c->buf[i].len = b.length;
        c->buf[i].start =
            ops.v4l2_mmap(NULL, b.length, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, b.m.offset);
        if (c->buf[i].start == MAP_FAILED) {
            c->buf[i].start = NULL;
            return cam_error(c, "mapping a buffer", errno);
        }
        if (xioctl(c->fd, VIDIOC_QBUF, &b) < 0) return cam_error(c, "queueing a buffer", errno);
    }
    enum v4l2_buf_type t = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    if (xioctl(c->fd, VIDIOC_STREAMON, &t) < 0) return cam_error(c, "starting the stream", errno);
    c->streaming = 1;
    return 0;
}

nn_source *nn_source_open_camera(const char *dev, int w, int h, int timeout_ms) {
    struct stat st;
    if (stat(dev, &st) != 0) {
        if (errno == ENOENT)
            nn_set_error("%s: no camera there (is a webcam plugged in? `ls /dev/video*` "
                         "lists the cameras; --source FILE_OR_DIR plays a video or a "
                         "folder of images instead)", dev);
        else
            nn_set_error("%s: %s", dev, strerror(errno));
        return NULL;
    }
    if (!S_ISCHR(st.st_mode)) {
        nn_set_error("%s: not a camera device (not a character device)", dev);
        return NULL;
    }
    cam_source *c = calloc(1, sizeof *c);
    if (!c) {
        nn_set_error("out of memory");
        return NULL;
    }
    snprintf(c->base.name, sizeof c->base.name, "%s", dev);
    c->base.read = cam_read;
    c->base.close = cam_close;
    c->base.live = 1;
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 3000;
    /* plain open + QUERYCAP first: clear errors for missing, busy and
     * non-V4L2 devices before libv4l2 wraps the descriptor */
    int fd = ops.open(dev, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        c->fd = -1;
        cam_error(c, "cannot open", errno);
        cam_close(&c->base);
        return NULL;
    }
    struct v4l2_capability cap;
    memset(&cap, 0, sizeof cap);
    int qr;
    do qr = ops.ioctl(fd, VIDIOC_QUERYCAP, &cap);
    while (qr == -1 && errno == EINTR);
    if (qr < 0) {
        int e = errno;
        ops.close(fd);
        c->fd = -1;
        if (e == ENOTTY || e == EINVAL)
            nn_set_error("%s: not a V4L2 video device", dev);
        else
            cam_error(c, "querying the device", e);
        cam_close(&c->base);
        return NULL;
    }
    c->fd = ops.v4l2_fd_open(fd, 0);
    if (c->fd < 0) {
        int e = errno;
        ops.close(fd);
        cam_error(c, "libv4l2 cannot use it", e);
        cam_close(&c->base);
        return NULL;
    }
    uint32_t caps = (cap.capabilities & V4L2_CAP_DEVICE_CAPS) ? cap.device_caps : cap.capabilities;
    if (!(caps & V4L2_CAP_VIDEO_CAPTURE)) {
        nn_set_error("%s: '%s' is not a video capture device (try another /dev/videoN)", dev,
                     (const char *)cap.card);
        goto fail;
    }
    struct v4l2_format fmt;
    memset(&fmt, 0, sizeof fmt);
    fmt.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    fmt.fmt.pix.width = (unsigned)(w > 0 ? w : 640);
    fmt.fmt.pix.height = (unsigned)(h > 0 ? h : 480);
    fmt.fmt.pix.pixelformat = V4L2_PIX_FMT_RGB24;
    fmt.fmt.pix.field = V4L2_FIELD_ANY;
    if (xioctl(c->fd, VIDIOC_S_FMT, &fmt) < 0) {
        cam_error(c, "setting the RGB24 format", errno);
        goto fail;
    }
    if (fmt.fmt.pix.pixelformat != V4L2_PIX_FMT_RGB24) {
        nn_set_error("%s: the camera cannot deliver RGB24 frames, even through libv4l2", dev);
        goto fail;
    }
    c->base.w = (int)fmt.fmt.pix.width;
    c->base.h = (int)fmt.fmt.pix.height;
    if (c->base.w <= 0 || c->base.h <= 0 ||
        (uint64_t)c->base.w * c->base.h > NN_IMAGE_MAX_PIXELS) {
        nn_set_error("%s: the driver chose a frame size of %dx%d", dev, c->base.w, c->base.h);
        goto fail;
    }
    if ((w > 0 && c->base.w != w) || (h > 0 && c->base.h != h))
        fprintf(stderr, "nnmask-live: %s: the camera gives %dx%d, not %dx%d\n", dev, c->base.w,
                c->base.h, w, h);
    c->bytesperline = fmt.fmt.pix.bytesperline >= (unsigned)c->base.w * 3
                          ? fmt.fmt.pix.bytesperline
                          : (unsigned)c->base.w * 3;
    c->sizeimage = fmt.fmt.pix.sizeimage >= c->bytesperline * (unsigned)c->base.h
                       ? fmt.fmt.pix.sizeimage
                       : c->bytesperline * (unsigned)c->base.h;
    /* ask for 30 frames/s; drivers that cannot just keep their own rate */
    struct v4l2_streamparm parm;
    memset(&parm, 0, sizeof parm);
    parm.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    parm.parm.capture.timeperframe.numerator = 1;
    parm.parm.capture.timeperframe.denominator = 30;
    if (xioctl(c->fd, VIDIOC_S_PARM, &parm) == 0 && parm.parm.capture.timeperframe.numerator)
        c->base.fps = (double)parm.parm.capture.timeperframe.denominator /
                      parm.parm.capture.timeperframe.numerator;
    if (caps & V4L2_CAP_STREAMING) {
        c->use_mmap = 1;
        if (cam_setup_mmap(c)) goto fail;
    } else if (caps & V4L2_CAP_READWRITE) {
        c->readbuf = malloc(c->sizeimage);
        if (!c->readbuf) {
            nn_set_error("out of memory");
            goto fail;
        }
    } else {
        nn_set_error("%s: the camera supports neither streaming nor read() I/O", dev);
        goto fail;
    }
    return &c->base;
fail:
    cam_close(&c->base);
    return NULL;
}

int nn_source_have_camera(void) { return 1; }

#else /* !NN_HAVE_V4L2 */

nn_source *nn_source_open_camera(const char *dev, int w, int h, int timeout_ms) {
    (void)w;
    (void)h;
    (void)timeout_ms;
    struct stat st;
    if (stat(dev, &st) != 0 && errno == ENOENT)
        nn_set_error("%s: no camera there (is a webcam plugged in? `ls /dev/video*` lists "
                     "the cameras)", dev);
    else
        nn_set_error("%s: this nnmask-live was built without libv4l2 (libv4l-dev), so it "
                     "cannot read cameras; use --source FILE_OR_DIR", dev);
    return NULL;
}

int nn_source_have_camera(void) { return 0; }

void nn_source_set_v4l2_ops_for_tests(const nn_v4l2_ops *o) { (void)o; }

#endif
