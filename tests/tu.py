"""tu.py — the check counter every Python test shares: check() counts and
reports a failed condition, summary() prints the closing line and returns
the exit status."""
import sys

passed = failed = 0


def check(cond, msg):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL: %s" % msg, file=sys.stderr)
    return cond


def summary(name):
    print("%s: %d passed, %d failed" % (name, passed, failed))
    return 1 if failed else 0


def street_subset(street, tmp, n_photos):
    """A copy of STREET/ANNOTATIONS.csv holding the faces of its first n_photos
    photos (by name), in tmp/street/ next to a link to the photos. Returns
    (the CSV's path, the rows kept, the source's full list of rows)."""
    import csv
    import os
    rows = list(csv.DictReader(open(os.path.join(street, "ANNOTATIONS.csv"))))
    photos = set(sorted({r["image"] for r in rows})[:n_photos])
    keep = [r for r in rows if r["image"] in photos]
    d = os.path.join(tmp, "street")
    os.makedirs(d)
    os.symlink(os.path.abspath(os.path.join(street, "photos")), os.path.join(d, "photos"))
    path = os.path.join(d, "ANNOTATIONS.csv")
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(keep)
    return path, keep, rows


def shared_street_mask():
    """$NNMASK_SHARED's data/street and data/mask folders, or None after
    printing the skip line (the caller exits 77) when either is missing."""
    import os
    shared = os.environ.get("NNMASK_SHARED", "../shared")
    street = os.path.join(shared, "data", "street")
    mask = os.path.join(shared, "data", "mask")
    if not os.path.exists(os.path.join(street, "ANNOTATIONS.csv")) or not os.path.isdir(mask):
        print(f"skip: {street}/ANNOTATIONS.csv or {mask} not found (set NNMASK_SHARED)")
        return None
    return street, mask
