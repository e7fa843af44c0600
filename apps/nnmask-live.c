/* nnmask-live.c — real-time face-mask detection on a camera, a video file or
 * a folder of images: an SDL2 window (or --headless JSON lines per frame). */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <SDL.h>
#include <cjson/cJSON.h>

#include "live/source.h"
#include "nnmask.h"
#include "pipeline.h"

static void usage(FILE *f) {
    fprintf(f, "nnmask-live: cameras %s, video files %s\n",
            nn_source_have_camera() ? "yes (libv4l2)" : "no (built without libv4l2)",
            nn_source_have_video() ? "yes (libavformat/libavcodec)" : "no (built without libav)");
    fputs(
        "usage: nnmask-live [options]\n"
        "  --camera DEV          V4L2 camera (default /dev/video0)\n"
        "  --source PATH         a video file or a folder of images instead of a camera\n"
        "  --loop                start a file source again at its end\n"
        "  --size WxH            camera capture size (default 640x480); for --source,\n"
        "                        frames are resized to it (default: the file's size)\n"
        "  --model M             trained mask classifier (.safetensors); default: the\n"
        "                        camera model camera.safetensors in $NNMASK_MODELS or\n"
        "                        models/ (train/make_camera_model.sh); without one (or\n"
        "                        with --model none) faces are only labelled \"face\"\n"
        "  --detector D          converted UltraFace detector (.safetensors); default:\n"
        "                        $NNMASK_DETECTOR, else ultraface-RFB-320 (else -slim-320)\n"
        "                        .safetensors in\n"
        "                        $NNMASK_MODELS, models/ or weights/\n"
        "  --det-size N          detector input long side (default 320; larger finds\n"
        "                        smaller faces, slower)\n"
        "  --threshold S         face score threshold (default 0.7)\n"
        "  --alert               red banner and a beep while an unmasked face is in view\n"
        "  --headless            no window: one JSON line per frame on stdout\n"
        "  --json                print the JSON lines in window mode too\n"
        "  --frames N            stop after N frames (alias: --exit-after N)\n"
        "  --screenshot-dir DIR  where 's' saves screenshots (default .); with --frames,\n"
        "                        the last frame is saved there too\n"
        "  --window-size WxH     initial window size (default: the frame size)\n"
        "  --threads N           CPU threads (default: all cores)\n"
        "  --stats               print the time per stage (read, detect, crop, classify,\n"
        "                        draw, display) at the end\n"
        "  --timeout-ms N        camera: longest wait for a frame (default 3000)\n"
        "keys: q or Esc quit, s screenshot, space pause/resume; the window resizes.\n"
        "JSON line: {\"frame\": i, \"time\": s, \"faces\": [{\"box\": [x0,y0,x1,y1],\n"
        "  \"score\": S, \"label\": L, \"probability\": P}, ...]} (P null without a model)\n",
        f);
}

typedef struct {
    const char *camera, *source, *model, *detector, *shot_dir;
    int win_w, win_h;
    int stats;
    int w, h, size_given, loop, alert, headless, json, frames, threads, timeout_ms;
    int det_size;
    float threshold;
} live_args;

static int parse_int(const char *s, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

static int parse_args(int argc, char **argv, live_args *a) {
    memset(a, 0, sizeof *a);
    a->camera = "/dev/video0";
    a->w = 640;
    a->h = 480;
    a->threshold = -1;
    a->timeout_ms = 3000;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE                                                       \
    do {                                                                 \
        if (!v) {                                                        \
            fprintf(stderr, "nnmask-live: %s needs a value\n", o);       \
            return -1;                                                   \
        }                                                                \
        i++;                                                             \
    } while (0)
#define BAD_VALUE                                                                 \
    do {                                                                          \
        fprintf(stderr, "nnmask-live: bad value for %s: '%s'\n", o, v);           \
        return -1;                                                                \
    } while (0)
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(o, "--camera")) {
            NEED_VALUE;
            a->camera = v;
        } else if (!strcmp(o, "--source")) {
            NEED_VALUE;
            a->source = v;
        } else if (!strcmp(o, "--size")) {
            NEED_VALUE;
            int w, h;
            char tail;
            if (sscanf(v, "%dx%d%c", &w, &h, &tail) != 2 || w < 16 || h < 16 || w > 8192 ||
                h > 8192)
                BAD_VALUE;
            a->w = w;
            a->h = h;
            a->size_given = 1;
        } else if (!strcmp(o, "--window-size")) {
            NEED_VALUE;
            char tail;
            if (sscanf(v, "%dx%d%c", &a->win_w, &a->win_h, &tail) != 2 || a->win_w < 16 ||
                a->win_h < 16 || a->win_w > 16384 || a->win_h > 16384)
                BAD_VALUE;
        } else if (!strcmp(o, "--model")) {
            NEED_VALUE;
            a->model = v;
        } else if (!strcmp(o, "--detector")) {
            NEED_VALUE;
            a->detector = v;
        } else if (!strcmp(o, "--det-size")) {
            NEED_VALUE;
            if (parse_int(v, 32, 4096, &a->det_size)) BAD_VALUE;
        } else if (!strcmp(o, "--threshold")) {
            NEED_VALUE;
            char *end;
            a->threshold = strtof(v, &end);
            if (end == v || *end || !(a->threshold > 0 && a->threshold < 1)) BAD_VALUE;
        } else if (!strcmp(o, "--frames") || !strcmp(o, "--exit-after")) {
            NEED_VALUE;
            if (parse_int(v, 1, 1 << 30, &a->frames)) BAD_VALUE;
        } else if (!strcmp(o, "--threads")) {
            NEED_VALUE;
            if (parse_int(v, 1, 1024, &a->threads)) BAD_VALUE;
        } else if (!strcmp(o, "--timeout-ms")) {
            NEED_VALUE;
            if (parse_int(v, 10, 600000, &a->timeout_ms)) BAD_VALUE;
        } else if (!strcmp(o, "--screenshot-dir")) {
            NEED_VALUE;
            a->shot_dir = v;
        } else if (!strcmp(o, "--alert")) {
            a->alert = 1;
        } else if (!strcmp(o, "--headless")) {
            a->headless = 1;
        } else if (!strcmp(o, "--json")) {
            a->json = 1;
        } else if (!strcmp(o, "--stats")) {
            a->stats = 1;
        } else if (!strcmp(o, "--loop")) {
            a->loop = 1;
        } else {
            fprintf(stderr, "nnmask-live: unknown option '%s' (try --help)\n", o);
            return -1;
        }
#undef NEED_VALUE
#undef BAD_VALUE
    }
    if (a->headless) a->json = 1;
    return 0;
}

/* ---- JSON ---- */

static double round_to(double v, double q) { return round(v / q) * q; }

static void print_json(int frame_no, double t, const nn_pipe_face *faces, int n) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "frame", frame_no);
    cJSON_AddNumberToObject(o, "time", round_to(t, 1e-4));
    cJSON *arr = cJSON_AddArrayToObject(o, "faces");
    for (int i = 0; i < n; i++) {
        const nn_pipe_face *f = &faces[i];
        cJSON *jf = cJSON_CreateObject();
        const double box[4] = {round_to(f->x0, 0.01), round_to(f->y0, 0.01),
                               round_to(f->x1, 0.01), round_to(f->y1, 0.01)};
        cJSON_AddItemToObject(jf, "box", cJSON_CreateDoubleArray(box, 4));
        cJSON_AddNumberToObject(jf, "score", round_to(f->score, 1e-4));
        cJSON_AddStringToObject(jf, "label", f->label);
        if (f->prob >= 0)
            cJSON_AddNumberToObject(jf, "probability", round_to(f->prob, 1e-4));
        else
            cJSON_AddNullToObject(jf, "probability");
        cJSON_AddItemToArray(arr, jf);
    }
    char *s = cJSON_PrintUnformatted(o);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        fflush(stdout);
        cJSON_free(s);
    }
    cJSON_Delete(o);
}

/* ---- overlay: frame rate, counts, alert banner ---- */

static void draw_overlay(nn_image *img, double fps, int masked, int unmasked, int unknown,
                         int has_classifier, int alert_on) {
    int s = nn_draw_text_scale(img->w, img->h);
    nn_rgb white = {255, 255, 255}, black = {0, 0, 0};
    char line[160];
    if (has_classifier)
        snprintf(line, sizeof line, "%.1f fps  masked %d  unmasked %d", fps, masked, unmasked);
    else
        snprintf(line, sizeof line, "%.1f fps  faces %d (no classifier)", fps, unknown);
    int pad = 2 * s;
    int tw = nn_draw_text_width(line, s), th = nn_draw_text_height(line, s);
    int y = img->h - th - 2 * pad;   /* bottom-left: faces are rarely there */
    nn_draw_blend_rect(img, 0, y, tw + 2 * pad, img->h, black, 0.6f);
    nn_draw_text(img, pad, y + pad, line, s, white);
    if (alert_on) {
        const char *msg = unmasked == 1 ? "ALERT: 1 person without a mask"
                                        : "ALERT: people without a mask";
        char buf[64];
        if (unmasked > 1) {
            snprintf(buf, sizeof buf, "ALERT: %d people without a mask", unmasked);
            msg = buf;
        }
        int bs = s + 1;
        int bh = nn_draw_text_height(msg, bs) + 4 * bs;
        nn_draw_blend_rect(img, 0, 0, img->w, bh, NN_RGB_NOMASK, 0.85f);
        int bw = nn_draw_text_width(msg, bs);
        nn_draw_text(img, (img->w - bw) / 2, 2 * bs, msg, bs, white);
    }
}

/* ---- alert sound: a generated 880 Hz beep, 0.15 s every 0.5 s ---- */

typedef struct {
    SDL_AudioDeviceID dev;
    SDL_atomic_t on;
    double phase;
    long sample;
    int rate;
} beeper;

static void beep_callback(void *ud, Uint8 *stream, int len) {
    beeper *b = ud;
    float *out = (float *)stream;
    int n = len / (int)sizeof(float);
    int on = SDL_AtomicGet(&b->on);
    const double two_pi = 6.283185307179586;
    long period = b->rate / 2, beep = (long)(b->rate * 0.15);
    long ramp = b->rate / 200;   /* 5 ms fade in/out: no clicks */
    for (int i = 0; i < n; i++) {
        float v = 0.0f;
        long k = b->sample % period;
        if (on && k < beep) {
            double env = 1.0;
            if (k < ramp) env = (double)k / ramp;
            if (beep - k < ramp) env = (double)(beep - k) / ramp;
            v = (float)(0.25 * env * sin(b->phase));
        }
        b->phase += two_pi * 880.0 / b->rate;
        if (b->phase > two_pi) b->phase -= two_pi;
        out[i] = v;
        b->sample = on ? b->sample + 1 : 0;
    }
}

static int beeper_open(beeper *b) {
    memset(b, 0, sizeof *b);
    if (SDL_InitSubSystem(SDL_INIT_AUDIO) != 0) {
        fprintf(stderr, "nnmask-live: warning: no audio (%s); the alert is visual only\n",
                SDL_GetError());
        return -1;
    }
    SDL_AudioSpec want, have;
    SDL_zero(want);
    want.freq = 48000;
    want.format = AUDIO_F32SYS;
    want.channels = 1;
    want.samples = 1024;
    want.callback = beep_callback;
    want.userdata = b;
    b->dev = SDL_OpenAudioDevice(NULL, 0, &want, &have, 0);
    if (!b->dev) {
        fprintf(stderr, "nnmask-live: warning: cannot open an audio device (%s); the alert "
                        "is visual only\n", SDL_GetError());
        SDL_QuitSubSystem(SDL_INIT_AUDIO);
        return -1;
    }
    b->rate = have.freq > 0 ? have.freq : 48000;
    SDL_PauseAudioDevice(b->dev, 0);
    return 0;
}

static void beeper_close(beeper *b) {
    if (!b->dev) return;
    SDL_CloseAudioDevice(b->dev);
    b->dev = 0;
    SDL_QuitSubSystem(SDL_INIT_AUDIO);
}

/* ---- screenshots ---- */

static int save_png(const nn_image *img, const char *dir, int frame_no) {
    if (nn_mkdir_p(dir)) return -1;
    char path[4096], stamp[32];
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    snprintf(path, sizeof path, "%s/nnmask-live-%s-%06d.png", dir, stamp, frame_no);
    for (int k = 2; access(path, F_OK) == 0 && k < 1000; k++)   /* paused: same frame */
        snprintf(path, sizeof path, "%s/nnmask-live-%s-%06d-%d.png", dir, stamp, frame_no, k);
    if (nn_image_write(img, path, 0)) return -1;
    fprintf(stderr, "nnmask-live: screenshot %s\n", path);
    return 0;
}

/* What the window shows, read back from the renderer (letterbox included). */
static int window_screenshot(SDL_Renderer *r, nn_image *buf, const char *dir, int frame_no) {
    int w, h;
    if (SDL_GetRendererOutputSize(r, &w, &h) != 0)
        return nn_set_error("screenshot: %s", SDL_GetError());
    if (buf->w != w || buf->h != h) {
        nn_image_free(buf);
        if (nn_image_alloc(buf, w, h)) return -1;
    }
    /* the whole output, bars included: reads go through the viewport, which
     * the logical size narrows to the picture */
    int lw, lh;
    SDL_RenderGetLogicalSize(r, &lw, &lh);
    SDL_RenderSetLogicalSize(r, 0, 0);
    SDL_RenderSetViewport(r, NULL);
    int rr = SDL_RenderReadPixels(r, NULL, SDL_PIXELFORMAT_RGB24, buf->rgb, w * 3);
    SDL_RenderSetLogicalSize(r, lw, lh);
    if (rr != 0) return nn_set_error("screenshot: %s", SDL_GetError());
    return save_png(buf, dir, frame_no);
}

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

int main(int argc, char **argv) {
    live_args a;
    if (parse_args(argc, argv, &a)) {
        usage(stderr);
        return 2;
    }
    if (!a.detector && !(a.detector = nn_pipeline_default_detector()))
        a.detector = "models/ultraface-RFB-320.safetensors";   /* named in the error below */
    if (!a.model) a.model = nn_pipeline_default_classifier();
    else if (!strcmp(a.model, "none")) a.model = NULL;
    if (a.threads) nn_threads_set(a.threads);

    /* the source first: a missing camera fails fast, before any model loads */
    nn_source *src;
    if (a.source) {
        src = nn_source_open(a.source, a.size_given ? a.w : 0, a.size_given ? a.h : 0, a.loop);
    } else {
        src = nn_source_open_camera(a.camera, a.w, a.h, a.timeout_ms);
    }
    if (!src) {
        fprintf(stderr, "nnmask-live: %s\n", nn_error());
        return 1;
    }

    nn_pipe_opts po;
    nn_pipe_opts_default(&po);
    po.detector = a.detector;
    po.classifier = a.model;
    if (a.det_size) po.det_long_side = a.det_size;
    if (a.threshold > 0) po.det.score_threshold = a.threshold;
    nn_pipeline *pipe = nn_pipeline_new(&po);
    if (!pipe) {
        fprintf(stderr, "nnmask-live: %s\n", nn_error());
        if (access(a.detector, R_OK) != 0)
            fprintf(stderr, "nnmask-live: get the detector first (weights/fetch_weights.sh "
                            "ultraface), or pass --detector\n");
        nn_source_close(src);
        return 1;
    }
    int has_cls = nn_pipeline_has_classifier(pipe);

    nn_prefetch *pf = nn_prefetch_start(src);
    if (!pf) {
        fprintf(stderr, "nnmask-live: %s\n", nn_error());
        nn_pipeline_free(pipe);
        nn_source_close(src);
        return 1;
    }

    SDL_Window *win = NULL;
    SDL_Renderer *ren = NULL;
    SDL_Texture *tex = NULL;
    beeper bp;
    memset(&bp, 0, sizeof bp);
    int rc = 0;
    if (!a.headless) {
        if (SDL_Init(SDL_INIT_VIDEO | SDL_INIT_EVENTS) != 0) {
            fprintf(stderr, "nnmask-live: cannot open a window: %s (no display? use --headless)\n",
                    SDL_GetError());
            rc = 1;
            goto done;
        }
        char title[600];
        snprintf(title, sizeof title, "nnmask-live: %s", src->name);
        win = SDL_CreateWindow(title, SDL_WINDOWPOS_UNDEFINED, SDL_WINDOWPOS_UNDEFINED,
                               a.win_w ? a.win_w : src->w, a.win_h ? a.win_h : src->h,
                               SDL_WINDOW_RESIZABLE);
        if (win) ren = SDL_CreateRenderer(win, -1, SDL_RENDERER_ACCELERATED);
        if (win && !ren) ren = SDL_CreateRenderer(win, -1, SDL_RENDERER_SOFTWARE);
        if (ren) {
            SDL_SetHint(SDL_HINT_RENDER_SCALE_QUALITY, "linear");
            tex = SDL_CreateTexture(ren, SDL_PIXELFORMAT_RGB24, SDL_TEXTUREACCESS_STREAMING,
                                    src->w, src->h);
        }
        if (!win || !ren || !tex) {
            fprintf(stderr, "nnmask-live: cannot open a window: %s\n", SDL_GetError());
            rc = 1;
            goto done;
        }
        /* keeps the aspect ratio on resize: letterbox / pillarbox bars */
        SDL_RenderSetLogicalSize(ren, src->w, src->h);
        if (a.alert) beeper_open(&bp);
    } else {
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        if (a.alert) fprintf(stderr, "nnmask-live: --alert has no effect with --headless\n");
    }

    const char *shot_dir = a.shot_dir ? a.shot_dir : ".";
    nn_image shot = {0};
    nn_image *frame = NULL;
    int frame_no = 0, paused = 0, want_shot = 0, quit = 0;
    double t_start = nn_now(), t_prev = t_start, t_shown = 0, fps = 0, busy_s = 0;
    int masked = 0, unmasked = 0, unknown = 0;
    /* --stats: seconds summed over frames */
    double st_read = 0, st_wait = 0, st_detect = 0, st_crop = 0, st_cls = 0, st_draw = 0,
           st_show = 0;
    long st_faces = 0;
    while (!quit && !g_stop) {
        if (win) {
            SDL_Event ev;
            while (SDL_PollEvent(&ev)) {
                if (ev.type == SDL_QUIT) quit = 1;
                if (ev.type == SDL_KEYDOWN) {
                    SDL_Keycode k = ev.key.keysym.sym;
                    if (k == SDLK_q || k == SDLK_ESCAPE) quit = 1;
                    if (k == SDLK_s) want_shot = 1;
                    if (k == SDLK_SPACE) {
                        paused = !paused;
                        char title[600];
                        snprintf(title, sizeof title, "nnmask-live: %s%s", src->name,
                                 paused ? " (paused: space resumes)" : "");
                        SDL_SetWindowTitle(win, title);
                    }
                }
            }
            if (quit) break;
        }
        int fresh = 0;
        if (!paused || !frame) {
            int r = nn_prefetch_next(pf, &frame);
            if (r < 0) {
                fprintf(stderr, "nnmask-live: %s\n", nn_error());
                rc = 1;
                break;
            }
            if (r == 0) break;   /* end of the file source */
            double t0 = nn_now();
            if (nn_pipeline_run(pipe, frame) < 0) {
                fprintf(stderr, "nnmask-live: %s\n", nn_error());
                rc = 1;
                break;
            }
            int nf;
            const nn_pipe_face *faces = nn_pipeline_faces(pipe, &nf);
            nn_pipeline_counts(pipe, &masked, &unmasked, &unknown);
            if (a.json) print_json(frame_no, nn_now() - t_start, faces, nf);
            double t = nn_now(), dt = t - t_prev;
            t_prev = t;
            if (frame_no > 0 && dt > 0) fps = fps > 0 ? 0.9 * fps + 0.1 / dt : 1.0 / dt;
            if (win) {
                nn_pipeline_draw(pipe, frame);
                int alert_on = a.alert && unmasked > 0;
                draw_overlay(frame, fps, masked, unmasked, unknown, has_cls, alert_on);
                if (bp.dev) SDL_AtomicSet(&bp.on, alert_on);
            }
            busy_s += nn_now() - t0;
            const nn_pipe_timing *tm = nn_pipeline_timing(pipe);
            st_read += nn_prefetch_read_seconds(pf);
            st_wait += nn_prefetch_wait_seconds(pf);
            st_detect += tm->detect_s;
            st_crop += tm->crop_s;
            st_cls += tm->classify_s;
            st_draw += tm->draw_s;
            st_faces += tm->faces;
            frame_no++;
            fresh = 1;
        }
        if (win) {
            double ts = nn_now();
            if (fresh) SDL_UpdateTexture(tex, NULL, frame->rgb, frame->w * 3);
            SDL_SetRenderDrawColor(ren, 0, 0, 0, 255);
            SDL_RenderClear(ren);
            SDL_RenderCopy(ren, tex, NULL, NULL);
            int last = a.frames && frame_no >= a.frames;
            if (want_shot || (last && a.shot_dir)) {
                if (window_screenshot(ren, &shot, shot_dir, frame_no - 1))
                    fprintf(stderr, "nnmask-live: %s\n", nn_error());
                want_shot = 0;
            }
            SDL_RenderPresent(ren);
            if (fresh) st_show += nn_now() - ts;
            /* a video file plays at its own rate, not as fast as we can */
            if (fresh && !src->live && src->fps > 0) {
                double wait = t_shown + 1.0 / src->fps - nn_now();
                if (wait > 0.001) SDL_Delay((Uint32)(wait * 1000.0));
                t_shown = nn_now();
            }
            if (paused) SDL_WaitEventTimeout(NULL, 50);
        } else if (a.shot_dir && a.frames && frame_no >= a.frames) {
            /* headless: the last frame, annotated, as the window would show it */
            nn_pipeline_draw(pipe, frame);
            draw_overlay(frame, fps, masked, unmasked, unknown, has_cls, 0);
            if (save_png(frame, shot_dir, frame_no - 1))
                fprintf(stderr, "nnmask-live: %s\n", nn_error());
        }
        if (a.frames && frame_no >= a.frames) break;
    }
    double total = nn_now() - t_start;
    if (frame_no > 0)
        fprintf(stderr, "nnmask-live: %d frames in %.2f s (%.1f frames/s; %.1f ms per frame "
                        "in detect+classify+draw)\n",
                frame_no, total, frame_no / (total > 0 ? total : 1), 1000.0 * busy_s / frame_no);
    if (a.stats && frame_no > 0) {
        double k = 1000.0 / frame_no;
        fprintf(stderr,
                "nnmask-live: per frame (ms): read/decode %.2f (in the reader thread), waiting "
                "for a frame %.2f, detect %.2f, crop %.2f, classify %.2f (%.2f faces), draw "
                "%.2f, display %.2f\n",
                st_read * k, st_wait * k, st_detect * k, st_crop * k, st_cls * k,
                (double)st_faces / frame_no, st_draw * k, st_show * k);
    }
    nn_image_free(&shot);
done:
    beeper_close(&bp);
    nn_prefetch_stop(pf);
    if (tex) SDL_DestroyTexture(tex);
    if (ren) SDL_DestroyRenderer(ren);
    if (win) SDL_DestroyWindow(win);
    if (!a.headless) SDL_Quit();
    nn_pipeline_free(pipe);
    nn_source_close(src);
    return rc;
}
