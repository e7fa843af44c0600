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
