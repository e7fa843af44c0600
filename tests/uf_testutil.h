/* uf_testutil.h — helpers of the face-detector tests: run a child process,
 * and convert the shared UltraFace ONNX files into the build dir once. */
#ifndef NN_UF_TESTUTIL_H
#define NN_UF_TESTUTIL_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nnmask.h"

static inline const char *uf_python(void) {
    const char *p = getenv("NNMASK_PYTHON");
    return p ? p : "/usr/bin/python3";
}

/* Runs argv (argv[0] a path), returns its exit status, -1 if it did not run. */
static inline int uf_run(char *const argv[]) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        execv(argv[0], argv);
        _exit(127);
    }
    int st;
    if (waitpid(pid, &st, 0) < 0) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static inline int uf_file_exists(const char *p) {
    struct stat s;
    return stat(p, &s) == 0;
}

static inline double uf_mtime(const char *p) {
    struct stat s;
    return stat(p, &s) == 0 ? (double)s.st_mtime : -1.0;
}

/* Python with the modules in `mods` ("cv2, onnx")? */
static inline int uf_python_has(const char *mods) {
    char code[128];
    snprintf(code, sizeof code, "import %s", mods);
    char *argv[] = {(char *)uf_python(), "-c", code, NULL};
    return uf_run(argv) == 0;
}

/* ONNX file of a variant ("slim" or "RFB") in the shared folder. */
static inline void uf_onnx_path(char *dst, size_t cap, const char *shared, const char *variant) {
    snprintf(dst, cap, "%s/weights/ultraface/onnx/version-%s-320_without_postprocessing.onnx",
             shared, variant);
}

/* Converts the shared ONNX file of `variant` into $NNMASK_BUILD/ultraface/
 * unless it is already there and newer than the converter; writes the path
 * into dst. 0 on success, -1 with a message on stderr. */
static inline int uf_converted(char *dst, size_t cap, const char *shared, const char *variant) {
    const char *src = getenv("NNMASK_SRC"), *build = getenv("NNMASK_BUILD");
    if (!src) src = ".";
    if (!build) build = ".";
    char onnx[1024], conv[1024], dir[512];
    uf_onnx_path(onnx, sizeof onnx, shared, variant);
    snprintf(conv, sizeof conv, "%s/weights/convert_ultraface.py", src);
    snprintf(dir, sizeof dir, "%s/ultraface", build);
    snprintf(dst, cap, "%s/%s-320.safetensors", dir, variant);
    if (uf_mtime(dst) >= uf_mtime(conv) && uf_mtime(dst) >= uf_mtime(onnx)) return 0;
    if (nn_mkdir_p(dir)) {
        fprintf(stderr, "%s\n", nn_error());
        return -1;
    }
    char *argv[] = {(char *)uf_python(), conv, onnx, dst, NULL};
    int rc = uf_run(argv);
    if (rc != 0) {
        fprintf(stderr, "converting %s failed (exit %d)\n", onnx, rc);
        return -1;
    }
    return 0;
}
#endif
