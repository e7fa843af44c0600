/* source_video.c — a video file as a frame source: libavformat demuxes,
 * libavcodec decodes, libswscale converts to RGB at the source size. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "source.h"

#ifdef NN_HAVE_LIBAV
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>

typedef struct {
    nn_source base;
    AVFormatContext *fmt;
    AVCodecContext *dec;
    struct SwsContext *sws;
    AVPacket *pkt;
    AVFrame *frm;
    int stream;
    int eof_sent;
    int frames_out;   /* frames delivered since the last rewind */
} video_source;

static int av_fail(const char *path, const char *what, int err) {
    char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
    av_strerror(err, buf, sizeof buf);
    return nn_set_error("%s: %s: %s", path, what, buf);
}

static int convert(video_source *vs, nn_image *frame) {
    AVFrame *f = vs->frm;
    if (frame->w != vs->base.w || frame->h != vs->base.h || !frame->rgb)
        return nn_set_error("%s: frame buffer is %dx%d, source is %dx%d", vs->base.name,
                            frame->w, frame->h, vs->base.w, vs->base.h);
    vs->sws = sws_getCachedContext(vs->sws, f->width, f->height, f->format, vs->base.w,
                                   vs->base.h, AV_PIX_FMT_RGB24, SWS_BILINEAR, NULL, NULL,
                                   NULL);
    if (!vs->sws) return nn_set_error("%s: cannot convert frames to RGB", vs->base.name);
    uint8_t *dst[4] = {frame->rgb, NULL, NULL, NULL};
    int dst_stride[4] = {frame->w * 3, 0, 0, 0};
    sws_scale(vs->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, dst,
              dst_stride);
    return 0;
}

static int rewind_video(video_source *vs) {
    int r = av_seek_frame(vs->fmt, vs->stream, 0, AVSEEK_FLAG_BACKWARD);
    if (r < 0) r = avformat_seek_file(vs->fmt, -1, INT64_MIN, 0, 0, 0);
    if (r < 0) return av_fail(vs->base.name, "cannot seek back to the start", r);
    avcodec_flush_buffers(vs->dec);
    vs->eof_sent = 0;
    vs->frames_out = 0;
    return 0;
}

static int video_read(nn_source *s, nn_image *frame) {
    video_source *vs = (video_source *)s;
    for (;;) {
        int r = avcodec_receive_frame(vs->dec, vs->frm);
        if (r == 0) {
            int c = convert(vs, frame);
            av_frame_unref(vs->frm);
            if (c) return -1;
            vs->frames_out++;
            return 1;
        }
        if (r == AVERROR_EOF) {
            if (!s->loop || vs->frames_out == 0) return 0;
            if (rewind_video(vs)) return -1;
            continue;
        }
        if (r != AVERROR(EAGAIN)) return av_fail(s->name, "decoding failed", r);
        if (vs->eof_sent) return 0;
        /* feed the decoder the next packet of our stream */
        for (;;) {
            r = av_read_frame(vs->fmt, vs->pkt);
            if (r == AVERROR_EOF || (r < 0 && avio_feof(vs->fmt->pb))) {
                avcodec_send_packet(vs->dec, NULL);   /* drain */
                vs->eof_sent = 1;
                break;
            }
            if (r < 0) return av_fail(s->name, "read error", r);
            if (vs->pkt->stream_index != vs->stream) {
                av_packet_unref(vs->pkt);
                continue;
            }
            r = avcodec_send_packet(vs->dec, vs->pkt);
            av_packet_unref(vs->pkt);
            if (r < 0 && r != AVERROR(EAGAIN) && r != AVERROR_INVALIDDATA)
                return av_fail(s->name, "decoding failed", r);
            break;
        }
    }
}

static void video_close(nn_source *s) {
    video_source *vs = (video_source *)s;
    sws_freeContext(vs->sws);
    av_frame_free(&vs->frm);
    av_packet_free(&vs->pkt);
    avcodec_free_context(&vs->dec);
    avformat_close_input(&vs->fmt);
    free(vs);
}

nn_source *nn_source_open_video(const char *path, int w, int h, int loop) {
    av_log_set_level(AV_LOG_FATAL);   /* our own messages name the file */
    video_source *vs = calloc(1, sizeof *vs);
    if (!vs) {
        nn_set_error("out of memory");
        return NULL;
    }
    snprintf(vs->base.name, sizeof vs->base.name, "%s", path);
    vs->base.read = video_read;
    vs->base.close = video_close;
    vs->base.loop = loop;
    int r = avformat_open_input(&vs->fmt, path, NULL, NULL);
    if (r < 0) {
        av_fail(path, "cannot open video", r);
        free(vs);
        return NULL;
    }
    const AVCodec *codec = NULL;
    if ((r = avformat_find_stream_info(vs->fmt, NULL)) < 0) {
        av_fail(path, "cannot read stream info", r);
        goto fail;
    }
    r = av_find_best_stream(vs->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (r < 0 || !codec) {
        nn_set_error("%s: no video stream this build can decode", path);
        goto fail;
    }
    vs->stream = r;
    AVStream *st = vs->fmt->streams[r];
    vs->dec = avcodec_alloc_context3(codec);
    if (!vs->dec || avcodec_parameters_to_context(vs->dec, st->codecpar) < 0) {
        nn_set_error("%s: cannot set up the %s decoder", path, codec->name);
        goto fail;
    }
    vs->dec->thread_count = 1;   /* the prefetch thread is our parallelism */
    if ((r = avcodec_open2(vs->dec, codec, NULL)) < 0) {
        av_fail(path, "cannot open the decoder", r);
        goto fail;
    }
    vs->pkt = av_packet_alloc();
    vs->frm = av_frame_alloc();
    if (!vs->pkt || !vs->frm) {
        nn_set_error("out of memory");
        goto fail;
    }
    if (vs->dec->width <= 0 || vs->dec->height <= 0) {
        nn_set_error("%s: video has no frame size", path);
        goto fail;
    }
    vs->base.w = w > 0 && h > 0 ? w : vs->dec->width;
    vs->base.h = w > 0 && h > 0 ? h : vs->dec->height;
    if ((uint64_t)vs->base.w * vs->base.h > NN_IMAGE_MAX_PIXELS) {
        nn_set_error("%s: frames of %dx%d are too large", path, vs->base.w, vs->base.h);
        goto fail;
    }
    AVRational fr = av_guess_frame_rate(vs->fmt, st, NULL);
    vs->base.fps = fr.num > 0 && fr.den > 0 ? av_q2d(fr) : 0.0;
    return &vs->base;
fail:
    video_close(&vs->base);
    return NULL;
}

int nn_source_have_video(void) { return 1; }

#else /* !NN_HAVE_LIBAV */

nn_source *nn_source_open_video(const char *path, int w, int h, int loop) {
    (void)w;
    (void)h;
    (void)loop;
    nn_set_error("%s: this nnmask-live was built without libavformat/libavcodec, so it "
                 "cannot play video files; use a folder of images or rebuild with "
                 "libavformat-dev, libavcodec-dev and libswscale-dev installed",
                 path);
    return NULL;
}

int nn_source_have_video(void) { return 0; }

#endif
