#!/usr/bin/env python3
"""bench_views.py: fhirlake `view run` against @medplum/core evalSqlOnFhir, same views, same
NDJSON files, one run. Called by bench/views/run.sh (which finds the data); see there.

For each view: input MB, resources, rows; fhirlake wall time (best of REPEAT runs, process
start included) and @medplum/core's in-process end-to-end time (read + JSON.parse + eval +
NDJSON out; node start-up excluded); rows/s, MB/s and the ratio. The CPU-time ratio is
printed too: on a shared machine wall time also counts waiting for a core. For PatientDemographics
also fhirlake's parse-only time (a view whose where keeps nothing, same input) against the
eval time (full view minus parse-only). Figures are printed as "result:" lines.

fhirlake runs once per jobs setting in VIEWS_JOBS (comma list; "1" = `--jobs 1`, one
thread; "default" = no --jobs option, i.e. one parse/evaluate thread per online CPU; default
"1,default"); every table row and result line names its setting. The parse/eval split uses
the first setting.
"""
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
JS = os.path.join(ROOT, "tests", "js")
REPEAT = int(os.environ.get("VIEWS_REPEAT", "3"))
GOAL_RATIO = 50.0
JOBS = [j.strip() for j in os.environ.get("VIEWS_JOBS", "1,default").split(",") if j.strip()]


def jobs_args(j):
    return [] if j == "default" else ["--jobs", j]


def jobs_label(j):
    return "default jobs (%d CPUs)" % os.cpu_count() if j == "default" else "--jobs " + j


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def fhirlake_run(fhirlake, view, inp, out, jobs):
    """(wall, cpu) seconds of one `fhirlake view run`, or raises with its stderr."""
    c = children_cpu()
    t = time.perf_counter()
    with open(out, "wb") as f:
        p = subprocess.run([fhirlake, "view", "run", view, inp, "--format", "ndjson"] + jobs_args(jobs),
                           stdout=f, stderr=subprocess.PIPE)
    secs = time.perf_counter() - t
    if p.returncode != 0:
        raise RuntimeError(p.stderr.decode(errors="replace").strip()[:300])
    return secs, children_cpu() - c


def count_lines(path):
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def fhirlake_best(fhirlake, view, inp, out, jobs):
    """Best wall time of REPEAT runs, best CPU time, rows."""
    runs = [fhirlake_run(fhirlake, view, inp, out, jobs) for _ in range(REPEAT)]
    return min(w for w, _ in runs), min(c for _, c in runs), count_lines(out)


def row_key(line):
    """A row in comparable form: null columns dropped (one writer omits what the other
    writes as null), numbers by value."""
    row = json.loads(line)
    return json.dumps({k: (float(v) if isinstance(v, (int, float)) and not isinstance(v, bool)
                           else v) for k, v in row.items() if v is not None}, sort_keys=True)


def compare_rows(a, b):
    """(rows only in a, rows only in b, one example) for two NDJSON files, as multisets."""
    from collections import Counter
    with open(a) as fa, open(b) as fb:
        ca = Counter(row_key(x) for x in fa if x.strip())
        cb = Counter(row_key(x) for x in fb if x.strip())
    only_a, only_b = ca - cb, cb - ca
    ex = next(iter(only_a), None) or next(iter(only_b), None)
    return sum(only_a.values()), sum(only_b.values()), ex


def medplum(view, inp, out):
    p = subprocess.run(["node", os.path.join(JS, "medplum_views.mjs"), view, inp, out],
                       capture_output=True, text=True, cwd=JS)
    if p.returncode != 0:
        raise RuntimeError(p.stderr.strip()[-300:])
    return json.loads(p.stdout.strip().splitlines()[-1])


def rate(n, secs):
    return n / secs if secs > 0 else float("inf")


def human(x):
    for unit, div in (("M", 1e6), ("k", 1e3)):
        if x >= div:
            return "%.2f%s" % (x / div, unit)
    return "%.0f" % x


def main():
    fhirlake, outdir = sys.argv[1], sys.argv[2]
    jobs = [(v, os.path.abspath(i)) for v, i in (a.split("=", 1) for a in sys.argv[3:])]  # VIEW=INPUT
    outdir = os.path.abspath(outdir)
    os.makedirs(outdir, exist_ok=True)
    p = subprocess.run([fhirlake, "view", "run", os.path.join(HERE, "parse_only_Patient.json"),
                        "/dev/null"], capture_output=True, text=True)
    fl_ok = p.returncode == 0
    if not fl_ok:
        print("views: fhirlake `view run` not available (%s); measuring @medplum/core only"
              % p.stderr.strip()[:200])
    print("views: fhirlake jobs settings: %s" % ", ".join(jobs_label(j) for j in JOBS))
    hdr = "%-22s %-8s %8s %9s %9s | %9s %10s %9s | %9s %10s %8s | %7s" % (
        "view", "jobs", "input MB", "resources", "rows", "fhirlake", "rows/s", "MB/s",
        "medplum", "rows/s", "MB/s", "ratio")
    print(hdr)
    print("-" * len(hdr))
    failures = 0
    for name, inp in jobs:
        view = os.path.join(HERE, name + ".json")
        mb = os.path.getsize(inp) / 1e6
        m = medplum(view, inp, os.path.join(outdir, name + ".medplum.ndjson"))
        first = None
        for j in JOBS:
            fl_s = fl_cpu = fl_rows = None
            out = os.path.join(outdir, name + ".fhirlake.ndjson")
            if fl_ok:
                try:
                    fl_s, fl_cpu, fl_rows = fhirlake_best(fhirlake, view, inp, out, j)
                except RuntimeError as e:
                    print("views: fhirlake failed on %s (%s): %s" % (name, jobs_label(j), e))
                    failures += 1
            if first is None:
                first = (fl_s, fl_cpu)
            ratio = m["total_s"] / fl_s if fl_s else None
            print("%-22s %-8s %8.1f %9d %9s | %9s %10s %9s | %8.2fs %10s %8.1f | %7s" % (
                name, j, mb, m["resources"], fl_rows if fl_rows is not None else m["rows"],
                "%.3fs" % fl_s if fl_s else "-", human(rate(fl_rows, fl_s)) if fl_s else "-",
                "%.1f" % (mb / fl_s) if fl_s else "-", m["total_s"],
                human(rate(m["rows"], m["total_s"])), mb / m["total_s"],
                "%.0fx" % ratio if ratio else "-"))
            if fl_rows is not None:
                na, nb, ex = compare_rows(out, os.path.join(outdir, name + ".medplum.ndjson"))
                if na or nb:
                    print("views: WARNING %s (%s): outputs differ: %d fhirlake rows not in "
                          "@medplum/core's, %d the other way; e.g. %s"
                          % (name, jobs_label(j), na, nb, ex[:300]))
                else:
                    print("views: %s (%s): fhirlake and @medplum/core rows are identical"
                          % (name, jobs_label(j)))
            res = "result: views %s: %.1f MB, %d rows; @medplum/core %s rows/s (%.1f MB/s)" % (
                name, mb, m["rows"], human(rate(m["rows"], m["total_s"])), mb / m["total_s"])
            if fl_s:
                res += ("; fhirlake [%s] %s rows/s (%.1f MB/s); ratio %.0fx wall (goal >= "
                        "%.0fx), %.0fx CPU time (%.2fs vs %.3fs)") % (
                    jobs_label(j), human(rate(fl_rows, fl_s)), mb / fl_s, ratio, GOAL_RATIO,
                    m["cpu_s"] / fl_cpu if fl_cpu else float("inf"), m["cpu_s"], fl_cpu)
            print(res)
        fl_s, fl_cpu = first
        if fl_s and name == "PatientDemographics":
            parse_s, parse_c, _ = fhirlake_best(
                fhirlake, os.path.join(HERE, "parse_only_Patient.json"), inp,
                os.path.join(outdir, "parse_only.ndjson"), JOBS[0])
            eval_s, eval_c = max(fl_s - parse_s, 0.0), max(fl_cpu - parse_c, 0.0)
            print("result: views PatientDemographics [%s]: fhirlake parse-only %.3fs wall / "
                  "%.3fs CPU, eval %.3fs wall / %.3fs CPU (eval/parse %.2f wall, %.2f CPU; "
                  "goal <= 1); @medplum/core parse %.2fs, eval %.2fs" % (
                      jobs_label(JOBS[0]), parse_s, parse_c, eval_s, eval_c,
                      eval_s / parse_s if parse_s else float("inf"),
                      eval_c / parse_c if parse_c else float("inf"),
                      m["parse_s"], m["eval_s"]))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
