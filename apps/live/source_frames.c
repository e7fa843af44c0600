/* source_frames.c — a folder of images as a frame source: image files in
 * natural name order (frame2 before frame10), all delivered at one size. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "source.h"

typedef struct {
    nn_source base;
    char **files;
    int count, next;
    nn_image tmp;
} frames_source;

static int is_image_name(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot || name[0] == '.') return 0;
    static const char *ext[] = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"};
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
        if (strcasecmp(dot, ext[i]) == 0) return 1;
    return 0;
}

static int cmp_names(const void *a, const void *b) {
    return strverscmp(*(char *const *)a, *(char *const *)b);
}

/* Loads file i into frame at the source's size. */
static int load_into(frames_source *fs, int i, nn_image *frame) {
    nn_image *t = &fs->tmp;
    nn_image_free(t);
    if (nn_image_load(t, fs->files[i])) return -1;
    if (t->w != fs->base.w || t->h != fs->base.h) {
        if (nn_image_resize(t, t, fs->base.w, fs->base.h)) return -1;
    }
    if (frame->w != fs->base.w || frame->h != fs->base.h || !frame->rgb)
        return nn_set_error("%s: frame buffer is %dx%d, source is %dx%d", fs->base.name,
                            frame->w, frame->h, fs->base.w, fs->base.h);
    memcpy(frame->rgb, t->rgb, (size_t)t->w * t->h * 3);
    return 0;
}

static int frames_read(nn_source *s, nn_image *frame) {
    frames_source *fs = (frames_source *)s;
    if (fs->next >= fs->count) {
        if (!s->loop) return 0;
        fs->next = 0;
    }
    if (load_into(fs, fs->next, frame)) return -1;
    fs->next++;
    return 1;
}

static void frames_close(nn_source *s) {
    frames_source *fs = (frames_source *)s;
    for (int i = 0; i < fs->count; i++) free(fs->files[i]);
    free(fs->files);
    nn_image_free(&fs->tmp);
    free(fs);
}

nn_source *nn_source_open_frames(const char *dir, int w, int h, int loop) {
    DIR *d = opendir(dir);
    if (!d) {
        nn_set_error("%s: cannot open folder: %s", dir, strerror(errno));
        return NULL;
    }
    frames_source *fs = calloc(1, sizeof *fs);
    if (!fs) {
        closedir(d);
        nn_set_error("out of memory");
        return NULL;
    }
    int cap = 0;
    struct dirent *e;
    size_t dlen = strlen(dir);
    while ((e = readdir(d))) {
        if (!is_image_name(e->d_name)) continue;
        if (fs->count == cap) {
            cap = cap ? 2 * cap : 64;
            char **nf = realloc(fs->files, (size_t)cap * sizeof *nf);
            if (!nf) break;
            fs->files = nf;
        }
        size_t n = dlen + strlen(e->d_name) + 2;
        char *p = malloc(n);
        if (!p) break;
        snprintf(p, n, "%s%s%s", dir, dlen && dir[dlen - 1] == '/' ? "" : "/", e->d_name);
        struct stat st;
        if (stat(p, &st) != 0 || !S_ISREG(st.st_mode)) {
            free(p);
            continue;
        }
        fs->files[fs->count++] = p;
    }
    closedir(d);
    snprintf(fs->base.name, sizeof fs->base.name, "%s", dir);
    fs->base.read = frames_read;
    fs->base.close = frames_close;
    fs->base.loop = loop;
    if (fs->count == 0) {
        nn_set_error("%s: no images in this folder (.jpg .jpeg .png .bmp .gif .webp)", dir);
        frames_close(&fs->base);
        return NULL;
    }
    qsort(fs->files, (size_t)fs->count, sizeof *fs->files, cmp_names);
    if (w > 0 && h > 0) {
        fs->base.w = w;
        fs->base.h = h;
    } else {
        /* the first image fixes the size */
        if (nn_image_load(&fs->tmp, fs->files[0])) {
            frames_close(&fs->base);
            return NULL;
        }
        fs->base.w = fs->tmp.w;
        fs->base.h = fs->tmp.h;
    }
    return &fs->base;
}
