/* test_bench_smoke.c — runs nnmask-bench once on a few small rows (--loops 1
 * --json) and checks that it exits 0 (every kernel check passed) and that
 * each line is a JSON row with the documented fields. Not a timing test. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <sys/wait.h>

static int run(const char *bench, const char *args, int want_rows) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' --json --loops 1 --threads 2 %s", bench, args);
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL, "popen %s", cmd);
    if (!p) return -1;
    char line[4096];
    int rows = 0;
    while (fgets(line, sizeof line, p)) {
        cJSON *j = cJSON_Parse(line);
        CHECK(j != NULL, "not JSON: %s", line);
        if (!j) continue;
        rows++;
        static const char *num[] = {"batch", "threads", "min_ms", "median_ms", "max_ms", "gflops",
                                    "peak_frac"};
        cJSON *name = cJSON_GetObjectItem(j, "name");
        CHECK(cJSON_IsString(name), "row without a name: %s", line);
        for (size_t i = 0; i < sizeof num / sizeof *num; i++) {
            cJSON *v = cJSON_GetObjectItem(j, num[i]);
            CHECK(cJSON_IsNumber(v) && v->valuedouble >= 0, "%s: field %s", line, num[i]);
        }
        double mn = cJSON_GetObjectItem(j, "min_ms")->valuedouble;
        double md = cJSON_GetObjectItem(j, "median_ms")->valuedouble;
        double mx = cJSON_GetObjectItem(j, "max_ms")->valuedouble;
        CHECK(mn <= md && md <= mx && mn > 0, "%s: min/median/max out of order", line);
        CHECK(cJSON_GetObjectItem(j, "threads")->valueint == 2, "threads echoed");
        cJSON *ck = cJSON_GetObjectItem(j, "check");
        CHECK(cJSON_IsString(ck) && strcmp(ck->valuestring, "FAILED") != 0, "%s: check", line);
        cJSON_Delete(j);
    }
    int st = pclose(p);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: exit status %d", cmd, st);
    CHECK(rows == want_rows, "%s: %d rows, want %d", cmd, rows, want_rows);
    return rows;
}

int main(void) {
    const char *build = getenv("NNMASK_BUILD");
    char bench[1024];
    snprintf(bench, sizeof bench, "%s/apps/nnmask-bench", build ? build : ".");
    /* a pointwise shape forward and backward, a depthwise shape, the GEMM alone */
    run(bench, "--filter 960_160", 4); /* pw fwd, pw bwd, gemm_pw, sgemm_openblas */
    run(bench, "--filter dw_14_576_s2", 2); /* dw fwd, dw bwd */
    run(bench, "--filter dwsimd_7_960", 1);
    run(bench, "--filter irb_56_24_144_infer", 1);
    /* an unknown option fails */
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "'%s' --no-such-option 2>/dev/null", bench);
    int st = system(cmd);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2, "unknown option: status %d", st);
    return test_summary("test_bench_smoke");
}
