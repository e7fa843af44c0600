#!/usr/bin/python3
# test_predict.py — nnmask-predict --imagenet on ../shared/data/imagenet: top-1 classes, the output
# format, the default model location, unreadable inputs, a missing model, and peak memory.
import json
import os
import subprocess
import sys
import tempfile

from tu import check  # noqa: E402  (tests/tu.py: the shared counter)
import tu  # noqa: E402

SRC = os.environ.get("NNMASK_SRC") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("NNMASK_SHARED") or os.path.join(SRC, "..", "shared")
BUILD = os.environ.get("NNMASK_BUILD", "")
WEIGHTS = os.path.join(SHARED, "weights", "mobilenet_v2_1.0_224")
IMAGES = os.path.join(SHARED, "data", "imagenet")
EXPECT = {"bird.bmp": "chickadee", "cat.bmp": "Egyptian cat",
          "dragonfly.bmp": "dragonfly, darning needle, devil's darning needle, sewing needle, "
                           "snake feeder, snake doctor, mosquito hawk, skeeter hawk",
          "hot_dog.jpg": "hotdog, hot dog, red hot", "parrot.jpg": "macaw"}
RSS_LIMIT_MB = 40.0



def sanitized_build():
    """True when NNMASK_BUILD was configured with -Db_sanitize (RSS is meaningless there)."""
    try:
        with open(os.path.join(BUILD, "meson-info", "intro-buildoptions.json")) as f:
            for o in json.load(f):
                if o.get("name") == "b_sanitize":
                    return o.get("value") not in ("none", "", [])
    except (OSError, ValueError):
        pass
    return False


def parse(out):
    rows = {}
    for line in out.splitlines():
        f = line.split("\t")
        check(len(f) == 4, "4 tab-separated fields: %r" % line)
        if len(f) == 4:
            rows.setdefault(f[0], []).append((int(f[1]), float(f[2]), f[3]))
    return rows


def main():
    if len(sys.argv) < 2:
        print("usage: test_predict.py NNMASK_PREDICT", file=sys.stderr)
        return 2
    exe = sys.argv[1]
    if not os.path.isdir(WEIGHTS) or not os.path.isdir(IMAGES):
        print("test_predict: %s or %s absent, skipping" % (WEIGHTS, IMAGES))
        return 77
    with tempfile.TemporaryDirectory(prefix="nnmask-predict-") as tmp:
        models = os.path.join(tmp, "models")
        p = subprocess.run([sys.executable, os.path.join(SRC, "weights", "convert_mobilenetv2.py"),
                            "-q", WEIGHTS],   # imagenet_head/ is picked up by default
                           env=dict(os.environ, NNMASK_MODELS=models), capture_output=True, text=True)
        check(p.returncode == 0, "convert: %s" % p.stderr)
        model = os.path.join(models, "mobilenet_v2_1.0_224.safetensors")
        check(os.path.isfile(model), "the converter honours NNMASK_MODELS")

        bad = os.path.join(tmp, "broken.jpg")
        with open(bad, "wb") as f:
            f.write(b"\xff\xd8\xff\xe0 not really a jpeg")
        missing = os.path.join(tmp, "missing.png")
        imgs = [os.path.join(IMAGES, k) for k in sorted(EXPECT)]
        args = [exe, "--imagenet", imgs[0], bad, imgs[1], missing] + imgs[2:]
        env = dict(os.environ, NNMASK_MODELS=models)   # default model location
        p = subprocess.run(args, env=env, capture_output=True, text=True)
        check(p.returncode == 1, "rc %d with unreadable inputs (want 1)" % p.returncode)
        check("broken.jpg" in p.stderr and "missing.png" in p.stderr,
              "unreadable inputs reported on stderr: %r" % p.stderr)
        rows = parse(p.stdout)
        check(sorted(rows) == sorted(imgs), "every readable image printed: %s" % sorted(rows))
        for path in imgs:
            r = rows.get(path, [])
            check([x[0] for x in r] == [1, 2, 3, 4, 5], "%s: ranks 1..5" % path)
            probs = [x[1] for x in r]
            check(all(0 <= q <= 1 for q in probs) and probs == sorted(probs, reverse=True)
                  and sum(probs) <= 1.0001, "%s: probabilities %s" % (path, probs))
            top1 = r[0][2] if r else None
            want = EXPECT[os.path.basename(path)]
            check(top1 == want, "%s: top-1 %r, want %r" % (path, top1, want))
        print(p.stdout, end="")

        # explicit --model and --labels give the same answer
        p2 = subprocess.run([exe, "--imagenet", "--model", model, "--labels",
                             os.path.join(IMAGES, "labels.txt"), imgs[0]],
                            capture_output=True, text=True)
        check(p2.returncode == 0 and p2.stdout == "".join(
            l + "\n" for l in p.stdout.splitlines() if l.startswith(imgs[0] + "\t")),
              "--model/--labels: %r %r" % (p2.stdout, p2.stderr))

        # no model where the default points
        empty = os.path.join(tmp, "empty")
        os.makedirs(empty)
        p3 = subprocess.run([exe, "--imagenet", imgs[0]], env=dict(os.environ, NNMASK_MODELS=empty),
                            capture_output=True, text=True)
        check(p3.returncode == 2 and "fetch_weights" in p3.stderr and empty in p3.stderr,
              "missing default model: rc %d %r" % (p3.returncode, p3.stderr))
        # a backbone-only model has no head
        nohead = os.path.join(tmp, "nohead.safetensors")
        subprocess.run([sys.executable, os.path.join(SRC, "weights", "convert_mobilenetv2.py"),
                        "-q", "--no-imagenet-head", WEIGHTS, "-o", nohead], check=True)
        p4 = subprocess.run([exe, "--imagenet", "--model", nohead, imgs[0]],
                            capture_output=True, text=True)
        check(p4.returncode == 2 and "logits.weight" in p4.stderr, "no head: %r" % p4.stderr)

        # peak resident memory of batch-1 inference (one process, all 5 images),
        # from wait4() of that very child
        proc = subprocess.Popen([exe, "--imagenet", "--threads", "2", "--model", model] + imgs,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, ru = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        rss = ru.ru_maxrss / 1024.0
        check(proc.returncode == 0, "rss run: rc %d" % proc.returncode)
        if sanitized_build():
            print("test_predict: sanitizer build, peak RSS %.1f MB not checked" % rss)
        else:
            print("test_predict: peak RSS of nnmask-predict --imagenet (batch 1, 5 photos): %.1f MB"
                  % rss)
            check(rss < RSS_LIMIT_MB, "peak RSS %.1f MB >= %.0f MB" % (rss, RSS_LIMIT_MB))
    return tu.summary("test_predict")


if __name__ == "__main__":
    sys.exit(main())
