#!/usr/bin/python3
"""test_live.py — nnmask-live end to end, one mode per meson test:

  camera    missing / non-V4L2 / non-device cameras and bad sources give a
            clear message and exit 1 quickly (no hang); bad options exit 2.
  headless  --headless on a folder of frames generated from the shared
            photos (a photo panned across a 640x480 canvas): the JSON lines
            have the annotated faces; --frames, --loop, --size; the same
            frames as an MJPEG video (written with python3-opencv) give the
            same faces through libavformat/libavcodec.
  window    the SDL2 window under Xvfb: after N frames the screenshot of the
            window has box pixels of the right colour where the faces are
            (also with a wider window: pillarbox bars), --alert shows its
            banner without an audio device, and (when libXtst is there) the
            keys work: s saves a screenshot, space pauses/resumes, q quits.

Usage: test_live.py MODE NNMASK_LIVE LIVE_MAKE_MODEL. Needs $NNMASK_SHARED
(photos, UltraFace ONNX) for headless/window, else exit 77 (skip).
Classification is checked with an untrained classifier made at test time
(tests/live_make_model.c) whose threshold splits the last frame's faces into
with_mask and without_mask: labels follow the threshold, probabilities match
the helper's own crop + classify, the boxes are green (mask) / red (no mask)
and the --alert banner shows.
"""
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from tu import check  # noqa: E402  (tests/tu.py: the shared counter)
import tu  # noqa: E402

SKIP = 77

# engine/nnmask.h: NN_RGB_MASK, NN_RGB_NOMASK, NN_RGB_FACE
COLOURS = {"mask": (0, 200, 0), "nomask": (230, 0, 0), "face": (0, 120, 255)}
MASKED = ("with_mask", "mask")


def summary(name):
    sys.exit(tu.summary(name))


def skip(why):
    print("SKIP: " + why)
    sys.exit(SKIP)


def backtrace(pid):
    """Every thread's stack of a hung process (gdb, where installed), for the log."""
    gdb = shutil.which("gdb")
    if not gdb:
        return "(gdb not installed: no backtrace)"
    try:
        r = subprocess.run([gdb, "-p", str(pid), "-batch", "-ex", "thread apply all bt 30"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        return r.stdout.decode(errors="replace")[-12000:]
    except subprocess.TimeoutExpired:
        return "(gdb timed out)"


def run(args, timeout=60, env=None, retry_hang=False):
    """(exit status, stdout, stderr, seconds); a run past timeout is a hang: its
    threads' stacks go to stderr, and it fails the test, unless retry_hang,
    where one hang (SDL and the X server under load: seen once in ~90 runs of
    the window mode under the sanitizers) is retried once and a second fails."""
    t0 = time.time()
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        print("HANG after %d s: %s\n%s" % (timeout, " ".join(args), backtrace(p.pid)), file=sys.stderr)
        p.kill()
        p.communicate()
        if retry_hang:
            print("WARNING: retrying the hung run once", file=sys.stderr)
            return run(args, timeout, env, False)
        check(False, "timed out after %d s (hang): %s" % (timeout, " ".join(args)))
        return None, "", "", timeout
    return p.returncode, out.decode(errors="replace"), err.decode(errors="replace"), time.time() - t0


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    i = ix * iy
    u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - i
    return i / u if u > 0 else 0.0


def expected_colour(face):
    lab = face["label"]
    if face["probability"] is None:
        return COLOURS["face"]
    return COLOURS["mask"] if lab in MASKED else COLOURS["nomask"]


# ---------------------------------------------------------------------------
def mode_camera(live, helper):
    tmp = tempfile.mkdtemp(prefix="nnmask-live-cam-")
    try:
        cases = [
            (["--camera", os.path.join(tmp, "video0")], "no camera there"),
            (["--camera", "/dev/null"], "not a V4L2 video device"),
            (["--camera", os.path.join(tmp, "notadevice")], "not a camera device"),
            (["--source", os.path.join(tmp, "missing.mp4")], "No such file"),
            (["--source", tmp + "/emptydir"], "no images in this folder"),
        ]
        open(os.path.join(tmp, "notadevice"), "w").write("x")
        os.mkdir(tmp + "/emptydir")
        for extra, needle in cases:
            for mode in (["--headless", "--frames", "1"], ["--frames", "1"]):
                env = dict(os.environ)
                env.pop("DISPLAY", None)   # the window is never reached
                rc, out, err, dt = run([live] + extra + mode, timeout=20, env=env)
                what = " ".join(extra + mode)
                if rc is None:
                    continue
                check(rc == 1, "%s: exit %s, want 1 (stderr: %s)" % (what, rc, err.strip()))
                check(needle in err, "%s: stderr lacks '%s': %s" % (what, needle, err.strip()))
                check("nnmask-live:" in err and err.count("\n") <= 3,
                      "%s: want one clear message, got: %s" % (what, err.strip()))
                check(out == "", "%s: printed on stdout: %s" % (what, out[:200]))
                check(dt < 10, "%s: took %.1f s" % (what, dt))
        # the default camera, when this machine has none
        if not os.path.exists("/dev/video0"):
            rc, out, err, _ = run([live, "--headless", "--frames", "1"], timeout=20)
            check(rc == 1 and "/dev/video0: no camera there" in err,
                  "default camera: exit %s, stderr %s" % (rc, err.strip()))
        for bad in (["--size", "640"], ["--frames", "0"], ["--bogus"], ["--camera"],
                    ["--threshold", "2"]):
            rc, out, err, _ = run([live] + bad, timeout=20)
            check(rc == 2 and "nnmask-live:" in err, "%s: exit %s, want 2" % (bad, rc))
        rc, out, err, _ = run([live, "--help"], timeout=20)
        check(rc == 0 and "--headless" in out, "--help: exit %s" % rc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary("test_live_camera")


# ---------------------------------------------------------------------------
PHOTOS = ["andrewmvd_maksssksksss83.jpg", "andrewmvd_maksssksksss759.jpg",
          "andrewmvd_maksssksksss487.jpg"]
PER_PHOTO = 3
# One thread: CI runs tests side by side on few cores, where OpenMP teams
# that wait on each other's time slices make a run many times slower.
THREADS = ["--threads", "1"]


def setup(tmp):
    """Converts the detector and writes the frames; returns (detector, frames
    dir, truth per frame, frames as arrays)."""
    shared = os.environ.get("NNMASK_SHARED", "../shared")
    src = os.environ.get("NNMASK_SRC", ".")
    photos = os.path.join(shared, "data", "photos")
    onnx = os.path.join(shared, "weights", "ultraface", "onnx",
                        "version-slim-320_without_postprocessing.onnx")
    if not os.path.isdir(photos) or not os.path.isfile(onnx):
        skip("%s (shared photos and UltraFace weights) is absent" % shared)
    try:
        import cv2  # noqa: F401
        import numpy  # noqa: F401
    except ImportError:
        skip("needs python3-opencv and python3-numpy")
    import cv2
    import numpy as np
    det = os.path.join(tmp, "slim-320.safetensors")
    conv = subprocess.run([sys.executable, os.path.join(src, "weights", "convert_ultraface.py"),
                           onnx, det], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if conv.returncode == 3:
        skip("the detector converter needs python3-onnx")
    if conv.returncode != 0:
        check(False, "convert_ultraface.py failed: %s" % conv.stderr.decode())
        summary("test_live")
    ann = {}
    with open(os.path.join(photos, "ANNOTATIONS_andrewmvd.csv")) as f:
        for r in csv.DictReader(f):
            ann.setdefault(r["image"], []).append(
                (r["label"], [float(r[k]) for k in ("xmin", "ymin", "xmax", "ymax")]))
    fdir = os.path.join(tmp, "frames")
    os.mkdir(fdir)
    truth, frames = [], []
    i = 0
    for name in PHOTOS:
        im = cv2.imread(os.path.join(photos, name))
        h, w = im.shape[:2]
        s = min(600.0 / w, 440.0 / h)
        im2 = cv2.resize(im, (int(round(w * s)), int(round(h * s))), interpolation=cv2.INTER_AREA)
        for k in range(PER_PHOTO):   # a slow pan: the faces move between frames
            canvas = np.full((480, 640, 3), 90, np.uint8)
            ox = (640 - im2.shape[1]) // 2 + (k - 1) * 12
            oy = (480 - im2.shape[0]) // 2 + (k - 1) * 6
            canvas[oy:oy + im2.shape[0], ox:ox + im2.shape[1]] = im2
            # frame2 sorts before frame10: natural order is part of the test
            cv2.imwrite(os.path.join(fdir, "frame%d.png" % i), canvas)
            frames.append(canvas)
            truth.append([(lab, [b[0] * s + ox, b[1] * s + oy, b[2] * s + ox, b[3] * s + oy])
                          for lab, b in ann[name]])
            i += 1
    return det, fdir, truth, frames


def parse_lines(out, what):
    lines = []
    for ln in out.splitlines():
        try:
            lines.append(json.loads(ln))
        except ValueError:
            check(False, "%s: not a JSON line: %r" % (what, ln[:200]))
    return lines


def check_lines(lines, n, w, h, what):
    check(len(lines) == n, "%s: %d JSON lines, want %d" % (what, len(lines), n))
    prev_t = -1.0
    for i, o in enumerate(lines):
        check(o.get("frame") == i, "%s: line %d has frame %r" % (what, i, o.get("frame")))
        t = o.get("time")
        check(isinstance(t, (int, float)) and t >= prev_t, "%s: frame %d time %r" % (what, i, t))
        prev_t = t if isinstance(t, (int, float)) else prev_t
        faces = o.get("faces")
        if not check(isinstance(faces, list), "%s: frame %d has no faces list" % (what, i)):
            continue
        for f in faces:
            b = f.get("box")
            ok = (isinstance(b, list) and len(b) == 4 and all(isinstance(v, (int, float)) for v in b)
                  and 0 <= b[0] < b[2] <= w and 0 <= b[1] < b[3] <= h)
            check(ok, "%s: frame %d bad box %r" % (what, i, b))
            check(isinstance(f.get("score"), (int, float)) and 0.5 < f["score"] <= 1.0,
                  "%s: frame %d bad score %r" % (what, i, f.get("score")))
            check(isinstance(f.get("label"), str) and f["label"], "%s: bad label" % what)
            p = f.get("probability", "missing")
            check(p is None or (isinstance(p, (int, float)) and 0 <= p <= 1),
                  "%s: frame %d bad probability %r" % (what, i, p))


def match_truth(lines, truth, what, min_iou=0.35):
    """Recall and precision of the detections against the annotation."""
    tp = n_truth = n_det = 0
    for o, t in zip(lines, truth):
        dets = [f["box"] for f in o["faces"]]
        n_truth += len(t)
        n_det += len(dets)
        used = set()
        for _, g in t:
            best, bi = 0.0, -1
            for k, d in enumerate(dets):
                v = iou(d, g)
                if k not in used and v > best:
                    best, bi = v, k
            if best >= min_iou:
                used.add(bi)
                tp += 1
    recall = tp / max(1, n_truth)
    precision = tp / max(1, n_det)
    print("%s: %d annotated faces, %d detections, recall %.3f precision %.3f"
          % (what, n_truth, n_det, recall, precision))
    check(recall >= 0.9, "%s: recall %.3f < 0.9" % (what, recall))
    check(precision >= 0.9, "%s: precision %.3f < 0.9" % (what, precision))


def make_model(tmp, helper, fdir, n, last_faces):
    """An untrained classifier (tests/live_make_model.c) whose threshold
    splits the last frame's faces into with_mask / without_mask. Returns
    (path, reference) or (None, None) when it cannot split them."""
    path = os.path.join(tmp, "model.safetensors")
    boxes = ["%r,%r,%r,%r" % tuple(f["box"]) for f in last_faces]
    rc, out, err, _ = run([helper, path, os.path.join(fdir, "frame%d.png" % (n - 1))] + boxes)
    if rc == 3:
        print("note: the random classifier gives every face the same probability; "
              "classified checks skipped")
        return None, None
    if not check(rc == 0, "live_make_model: exit %s: %s" % (rc, err.strip())):
        return None, None
    return path, json.loads(out)


def check_classified(lines, plain, ref, what):
    """Classification keeps the detections, labels follow the threshold on
    P(without_mask), and the last frame matches the helper's probabilities
    (same crop policy; boxes differ by the JSON rounding only)."""
    thr = ref["threshold"]
    same_faces(lines, plain, what + " vs detector only", 0.999)
    for o in lines:
        for f in o["faces"]:
            p = f["probability"]
            if not check(isinstance(p, (int, float)) and f["label"] in ("with_mask",
                                                                       "without_mask"),
                         "%s: frame %d: unclassified face %r" % (what, o["frame"], f)):
                continue
            p1 = p if f["label"] == "without_mask" else 1.0 - p
            check((p1 >= thr - 2e-6) == (f["label"] == "without_mask"),
                  "%s: frame %d: label %s with P(without_mask) %.4f, threshold %.4f"
                  % (what, o["frame"], f["label"], p1, thr))
    last = lines[-1]["faces"] if lines else []
    if check(len(last) == len(ref["probs"]), "%s: last frame has %d faces, reference %d"
             % (what, len(last), len(ref["probs"]))):
        for f, pr in zip(last, ref["probs"]):
            p1 = f["probability"] if f["label"] == "without_mask" else 1.0 - f["probability"]
            check(abs(p1 - pr[1]) <= 0.01, "%s: P(without_mask) %.4f, reference %.4f"
                  % (what, p1, pr[1]))
        labels = set(f["label"] for f in last)
        check(labels == {"with_mask", "without_mask"},
              "%s: last frame labels %r, want both" % (what, sorted(labels)))


def same_faces(a, b, what, min_iou, min_score=0.0):
    """Faces scoring >= min_score in either run have a twin (IoU >= min_iou)
    in the other; with min_score 0 the counts must match too."""
    check(len(a) == len(b), "%s: %d vs %d frames" % (what, len(a), len(b)))
    for i, (x, y) in enumerate(zip(a, b)):
        if min_score <= 0 and not check(len(x["faces"]) == len(y["faces"]),
                                        "%s: frame %d: %d vs %d faces"
                                        % (what, i, len(x["faces"]), len(y["faces"]))):
            continue
        for p, q in ((x, y), (y, x)):
            for f in p["faces"]:
                if f["score"] < min_score:
                    continue
                best = max([iou(f["box"], g["box"]) for g in q["faces"]] or [0.0])
                check(best >= min_iou, "%s: frame %d: face %r has no twin (IoU %.2f)"
                      % (what, i, f["box"], best))


def mode_headless(live, helper):
    tmp = tempfile.mkdtemp(prefix="nnmask-live-hl-")
    try:
        det, fdir, truth, frames = setup(tmp)
        n = len(truth)
        base = [live, "--detector", det, "--headless"] + THREADS
        rc, out, err, _ = run(base + ["--source", fdir])
        check(rc == 0, "headless on frames: exit %s: %s" % (rc, err.strip()))
        lines = parse_lines(out, "frames")
        check_lines(lines, n, 640, 480, "frames")
        match_truth(lines, truth, "frames")

        rc, out, err, _ = run(base + ["--source", fdir, "--frames", "4"])
        check(rc == 0 and len(parse_lines(out, "--frames 4")) == 4, "--frames 4: exit %s, %d lines"
              % (rc, len(out.splitlines())))

        rc, out, err, _ = run(base + ["--source", fdir, "--loop", "--frames", str(n + 2)])
        looped = parse_lines(out, "--loop")
        check(rc == 0 and len(looped) == n + 2, "--loop: exit %s, %d lines" % (rc, len(looped)))
        if len(looped) == n + 2:
            same_faces(looped[n:], lines[:2], "--loop", 0.999)

        # --size resizes file frames: boxes scale with the frame
        rc, out, err, _ = run(base + ["--source", fdir, "--size", "960x720"])
        big = parse_lines(out, "--size")
        check(rc == 0, "--size 960x720: exit %s: %s" % (rc, err.strip()))
        check_lines(big, n, 960, 720, "--size 960x720")
        scaled = [{"faces": [{"box": [v / 1.5 for v in f["box"]]} for f in o["faces"]]}
                  for o in big]
        match_truth(scaled, truth, "--size 960x720")

        # the same frames as a video file
        help_out = run([live, "--help"])[1]
        import cv2
        vid = os.path.join(tmp, "frames.avi")
        vw = cv2.VideoWriter(vid, cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
        vw.set(cv2.VIDEOWRITER_PROP_QUALITY, 95)
        if not vw.isOpened():
            print("note: python3-opencv cannot write MJPEG video here; video part skipped")
        else:
            for fr in frames:
                vw.write(fr)
            vw.release()
            rc, out, err, _ = run(base + ["--source", vid])
            if "video files yes" in help_out:
                check(rc == 0, "headless on video: exit %s: %s" % (rc, err.strip()))
                vlines = parse_lines(out, "video")
                check_lines(vlines, n, 640, 480, "video")
                match_truth(vlines, truth, "video")
                # MJPEG is lossy: borderline faces may come and go
                same_faces(vlines, lines, "video vs frames", 0.7, min_score=0.9)
                rc, out, err, _ = run(base + ["--source", vid, "--loop", "--frames", str(n + 2)])
                check(rc == 0 and len(parse_lines(out, "video loop")) == n + 2,
                      "video --loop: exit %s: %s" % (rc, err.strip()))
                # a video cut short ends early but cleanly; junk is refused
                data = open(vid, "rb").read()
                cut = os.path.join(tmp, "cut.avi")
                open(cut, "wb").write(data[:len(data) // 2])
                rc, out, err, _ = run(base + ["--source", cut])
                got = len(parse_lines(out, "cut video"))
                check(rc == 0 and 1 <= got < n, "cut video: exit %s, %d frames: %s"
                      % (rc, got, err.strip()))
                junk = os.path.join(tmp, "junk.mp4")
                open(junk, "wb").write(bytes((i * 7919) % 251 for i in range(5000)))
                rc, out, err, _ = run(base + ["--source", junk])
                check(rc == 1 and "junk.mp4: cannot open video" in err and out == "",
                      "junk video: exit %s: %s" % (rc, err.strip()))
            else:
                check(rc == 1 and "without libav" in err,
                      "video without libav: exit %s: %s" % (rc, err.strip()))
        # an unreadable frame in the folder: clear error, exit 1
        bad = os.path.join(tmp, "bad")
        os.mkdir(bad)
        shutil.copy(os.path.join(fdir, "frame0.png"), os.path.join(bad, "a0.png"))
        open(os.path.join(bad, "a1.png"), "wb").write(b"not a png")
        rc, out, err, _ = run(base + ["--source", bad])
        check(rc == 1 and "a1.png" in err and len(out.splitlines()) == 1,
              "corrupt frame: exit %s, %d lines, stderr %s" % (rc, len(out.splitlines()), err))
        # with a classifier: labels, probabilities, same boxes
        model, ref = make_model(tmp, helper, fdir, n, lines[-1]["faces"] if lines else [])
        if model:
            rc, out, err, _ = run(base + ["--source", fdir, "--model", model])
            check(rc == 0, "headless with a model: exit %s: %s" % (rc, err.strip()))
            mlines = parse_lines(out, "model")
            check_lines(mlines, n, 640, 480, "model")
            check_classified(mlines, lines, ref, "model")
        rc, out, err, _ = run(base + ["--source", fdir, "--model",
                                      os.path.join(tmp, "nomodel.safetensors")])
        check(rc == 1 and "nomodel.safetensors" in err, "missing model: exit %s: %s"
              % (rc, err.strip()))
        rc, out, err, _ = run([live, "--source", fdir, "--headless", "--detector",
                               os.path.join(tmp, "nodetector.safetensors")])
        check(rc == 1 and "nodetector.safetensors" in err, "missing detector: exit %s: %s"
              % (rc, err.strip()))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary("test_live_headless")


# ---------------------------------------------------------------------------
def start_xvfb():
    xvfb = shutil.which("Xvfb")
    if not xvfb:
        skip("Xvfb is not installed (Debian package xvfb)")
    r, w = os.pipe()
    proc = subprocess.Popen([xvfb, "-displayfd", str(w), "-screen", "0", "1280x1024x24",
                             "-nolisten", "tcp", "-noreset"], pass_fds=(w,),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    data = b""
    deadline = time.time() + 20
    import select
    while time.time() < deadline and not data.endswith(b"\n"):
        ready, _, _ = select.select([r], [], [], 1.0)
        if ready:
            chunk = os.read(r, 64)
            if not chunk:
                break
            data += chunk
    os.close(r)
    if not data.strip():
        proc.kill()
        proc.wait()
        skip("Xvfb did not start")
    return proc, ":" + data.decode().strip()


def edge_points(box, t):
    """Pixels on the box outline as nn_draw_box draws it: t pixels inside
    [x0,x1) x [y0,y1), corners rounded to the nearest pixel."""
    x0, y0, x1, y1 = [int(v + 0.5) for v in box]
    pts = []
    for k in range(1, 8):   # interior points of each side, away from the corners
        fx = x0 + (x1 - x0) * k / 8.0
        fy = y0 + (y1 - y0) * k / 8.0
        pts.append((int(fx), y0 + t // 2))         # top
        pts.append((int(fx), y1 - 1 - t // 2))     # bottom
        pts.append((x0 + t // 2, int(fy)))         # left
        pts.append((x1 - 1 - t // 2, int(fy)))     # right
    return pts


def check_screenshot(png, frame, faces, win_w, win_h, what, alert):
    import cv2
    img = cv2.imread(png)
    if not check(img is not None, "%s: cannot read screenshot %s" % (what, png)):
        return
    img = img[:, :, ::-1]   # RGB
    check(img.shape[:2] == (win_h, win_w), "%s: screenshot is %dx%d, want %dx%d"
          % (what, img.shape[1], img.shape[0], win_w, win_h))
    fh, fw = frame.shape[:2]
    scale = min(win_w / fw, win_h / fh)
    ox = int((win_w - fw * scale) / 2)
    oy = int((win_h - fh * scale) / 2)
    check(scale == 1.0, "%s: test expects an unscaled frame" % what)
    t = max(2, (min(fw, fh) + 120) // 240)   # nn_draw_box_thickness
    src = frame[:, :, ::-1]
    if ox > 0:   # pillarbox bars are black
        bars = img[:, :ox].reshape(-1, 3)
        check((bars.max(axis=1) <= 8).mean() > 0.99, "%s: left bar is not black" % what)
    hit_total = src_total = n_total = 0
    for f in faces:
        want = expected_colour(f)
        pts = edge_points(f["box"], t)
        hit = sum(1 for x, y in pts
                  if 0 <= x < fw and 0 <= y < fh and
                  max(abs(int(img[y + oy, x + ox][c]) - want[c]) for c in range(3)) <= 12)
        was = sum(1 for x, y in pts
                  if 0 <= x < fw and 0 <= y < fh and
                  max(abs(int(src[y, x][c]) - want[c]) for c in range(3)) <= 12)
        check(hit >= 0.75 * len(pts), "%s: face %r (%s): only %d of %d outline pixels are %r"
              % (what, f["box"], f["label"], hit, len(pts), want))
        hit_total += hit
        src_total += was
        n_total += len(pts)
    # the colour really comes from the drawing, not from the photo
    check(src_total <= 0.1 * max(1, n_total), "%s: the source frame already has the box colour"
          % what)
    # and away from the faces the window shows the frame itself
    far = [(x, y) for x in range(20, fw - 20, 37) for y in range(60, fh - 60, 41)
           if all(not (f["box"][0] - 40 <= x <= f["box"][2] + 40 and
                       f["box"][1] - 60 <= y <= f["box"][3] + 40) for f in faces)]
    same = sum(1 for x, y in far if max(abs(int(img[y + oy, x + ox][c]) - int(src[y, x][c]))
                                        for c in range(3)) <= 3)
    check(len(far) > 10 and same >= 0.9 * len(far), "%s: only %d of %d pixels away from the "
          "faces match the frame" % (what, same, len(far)))
    if alert is not None:
        top = img[oy:oy + 8, ox:ox + fw].reshape(-1, 3).astype(int)
        red = ((top[:, 0] > 150) & (top[:, 1] < 80) & (top[:, 2] < 80)).mean()
        check((red > 0.9) == alert, "%s: alert banner %s (red share of the top rows %.2f)"
              % (what, "missing" if alert else "unexpected", red))

class Keyboard:
    """Key presses through the XTEST extension (libX11 + libXtst by ctypes);
    None when those libraries are absent."""

    @staticmethod
    def open(display):
        import ctypes
        import ctypes.util
        try:
            x11 = ctypes.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
            xtst = ctypes.CDLL(ctypes.util.find_library("Xtst") or "libXtst.so.6")
        except OSError:
            return None
        x11.XOpenDisplay.restype = ctypes.c_void_p
        x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
        x11.XStringToKeysym.restype = ctypes.c_ulong
        x11.XStringToKeysym.argtypes = [ctypes.c_char_p]
        x11.XKeysymToKeycode.restype = ctypes.c_ubyte
        x11.XKeysymToKeycode.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
        x11.XFlush.argtypes = [ctypes.c_void_p]
        x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
        xtst.XTestFakeKeyEvent.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_int,
                                           ctypes.c_ulong]
        xtst.XTestFakeMotionEvent.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                                              ctypes.c_int, ctypes.c_ulong]
        dpy = x11.XOpenDisplay(display.encode())
        if not dpy:
            return None
        k = Keyboard()
        k.x11, k.xtst, k.dpy = x11, xtst, dpy
        return k

    def press(self, name):
        code = self.x11.XKeysymToKeycode(self.dpy, self.x11.XStringToKeysym(name.encode()))
        # the pointer over the window: without a window manager the focus
        # follows it
        self.xtst.XTestFakeMotionEvent(self.dpy, -1, 100, 100, 0)
        self.xtst.XTestFakeKeyEvent(self.dpy, code, 1, 0)
        self.xtst.XTestFakeKeyEvent(self.dpy, code, 0, 0)
        self.x11.XFlush(self.dpy)

    def close(self):
        self.x11.XCloseDisplay(self.dpy)


def check_keys(live, det, fdir, env, tmp):
    """s saves a screenshot, space pauses and resumes, q quits."""
    import threading
    kb = Keyboard.open(env["DISPLAY"])
    if kb is None:
        print("note: libX11/libXtst not loadable: key presses not tested")
        return
    shots = os.path.join(tmp, "shots-keys")
    proc = subprocess.Popen([live, "--source", fdir, "--detector", det, "--loop", "--json",
                             "--screenshot-dir", shots] + THREADS, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines = []
    reader = threading.Thread(target=lambda: [lines.append(ln) for ln in proc.stdout])
    reader.start()

    def wait_for(cond, secs):
        end = time.time() + secs
        while time.time() < end and not cond():
            time.sleep(0.05)
        return cond()
    try:
        check(wait_for(lambda: len(lines) >= 3, 30), "keys: the window shows no frames")
        time.sleep(0.3)   # the window is mapped and has the pointer
        kb.press("s")
        check(wait_for(lambda: os.path.isdir(shots) and
                       any(p.endswith(".png") for p in os.listdir(shots)), 10),
              "keys: 's' saved no screenshot")
        kb.press("space")
        time.sleep(0.5)
        n0 = len(lines)
        time.sleep(1.0)
        check(len(lines) <= n0 + 1, "keys: space did not pause (%d -> %d frames)"
              % (n0, len(lines)))
        kb.press("space")
        check(wait_for(lambda: len(lines) > n0 + 3, 20), "keys: space did not resume")
        kb.press("q")
        try:
            rc = proc.wait(10)
            check(rc == 0, "keys: 'q' exit status %s" % rc)
        except subprocess.TimeoutExpired:
            check(False, "keys: 'q' did not quit")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(10)
        kb.close()


def mode_window(live, helper):
    tmp = tempfile.mkdtemp(prefix="nnmask-live-win-")
    xvfb = None
    try:
        det, fdir, truth, frames = setup(tmp)
        xvfb, display = start_xvfb()
        env = dict(os.environ)
        env.update({"DISPLAY": display, "SDL_AUDIODRIVER": "dummy", "SDL_VIDEODRIVER": "x11",
                    "SDL_RENDER_DRIVER": "software"})
        # Under AddressSanitizer: SDL's X11 and D-Bus libraries (dlopen'ed,
        # then closed) leave allocations LeakSanitizer cannot attribute;
        # leaks of nnmask's own code are caught by the headless test.
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
        n = len(truth)
        rc, out, err, _ = run([live, "--source", fdir, "--detector", det, "--headless"] + THREADS)
        plain = parse_lines(out, "detector only")
        check(rc == 0 and len(plain) == n, "headless: exit %s, %d lines" % (rc, len(plain)))
        model, ref = make_model(tmp, helper, fdir, n, plain[-1]["faces"] if plain else [])
        runs = [(None, None, "window")]
        if model:
            runs += [(model, None, "window+model"), (model, (800, 480), "window 800x480+model")]
        else:
            runs += [(None, (800, 480), "window 800x480")]
        for k, (mdl, win, tag) in enumerate(runs):
            shots = os.path.join(tmp, "shots-%d" % k)
            args = [live, "--source", fdir, "--detector", det, "--frames", str(n), "--json",
                    "--alert", "--screenshot-dir", shots] + THREADS
            if mdl:
                args += ["--model", mdl]
            if win:
                args += ["--window-size", "%dx%d" % win]
            rc, out, err, _ = run(args, timeout=90, env=env, retry_hang=True)
            check(rc == 0, "%s: exit %s: %s" % (tag, rc, err.strip()))
            lines = parse_lines(out, tag)
            check_lines(lines, n, 640, 480, tag)
            if len(lines) == n:
                match_truth(lines, truth, tag)
                if mdl:
                    check_classified(lines, plain, ref, tag)
                else:
                    same_faces(lines, plain, tag + " vs headless", 0.999)
            pngs = sorted(os.listdir(shots)) if os.path.isdir(shots) else []
            if not check(len(pngs) == 1 and pngs[0].endswith(".png"),
                         "%s: want one screenshot, got %r" % (tag, pngs)):
                continue
            if len(lines) == n:
                faces = lines[-1]["faces"]
                check(len(faces) >= 4, "%s: last frame has %d faces" % (tag, len(faces)))
                classified = any(f["probability"] is not None for f in faces)
                alert = (any(f["label"] not in MASKED for f in faces) if classified else False)
                check(alert == bool(mdl), "%s: alert expected %s" % (tag, bool(mdl)))
                ww, wh = win if win else (640, 480)
                check_screenshot(os.path.join(shots, pngs[0]), frames[-1], faces, ww, wh, tag,
                                 alert)
        check_keys(live, det, fdir, env, tmp)
    finally:
        if xvfb:
            xvfb.terminate()
            try:
                xvfb.wait(10)
            except subprocess.TimeoutExpired:
                xvfb.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    summary("test_live_window")


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("camera", "headless", "window"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    {"camera": mode_camera, "headless": mode_headless, "window": mode_window}[sys.argv[1]](
        sys.argv[2], sys.argv[3])
