/* tu_files.h — a scratch folder for tests that write files: tu_tmpdir_make()
 * creates it, tpath() names a file in it, write_file() fills one,
 * tu_tmpdir_remove() deletes the folder at the end. */
#ifndef NN_TU_FILES_H
#define NN_TU_FILES_H
#include <stdio.h>
#include <stdlib.h>

#include "nnmask.h"

static char tmpdir[256];

static inline void tu_tmpdir_make(const char *tag) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/nnmask-test-%s-XXXXXX", tag);
    if (!mkdtemp(tmpdir)) nn_fatal("mkdtemp failed");
}

static inline void tu_tmpdir_remove(void) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
}

/* tmpdir/name; the last 8 results stay valid. */
static inline const char *tpath(const char *name) {
    static char buf[8][512];
    static int k;
    char *p = buf[k++ & 7];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

static inline void write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len) nn_fatal("cannot write %s", path);
    fclose(f);
}
#endif
