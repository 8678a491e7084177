"""Benchmark harness: runs one command as a whole process and measures it from outside.

Not a benchmark itself. `bench/run` calls it once per command:

    python bench/harness.py run --name NAME --section S --out raw.jsonl --logs DIR \
        [--reps 3] [--warmup 1] [--cwd DIR] [--timeout S] -- command ...
    python bench/harness.py meta --out raw.jsonl --run-id ID ...   (machine, versions, date)

For every run of the command it records one JSON line in --out:

* wall_s: time.perf_counter() around the whole process (spawn to exit).
* peak_pss_mb / peak_rss_sum_mb / peak_nproc: a sampler thread, every 0.02 s during the
  first second (so sub-second startups are seen), every 0.1 s up to 5 s and every 0.2 s
  after, sums PSS (from /proc/<pid>/smaps_rollup) and RSS over
  the process and all its descendants, and counts them. A process counts as a descendant
  once it has been seen with an ancestor that is one, or in the command's own session, and
  stays counted after it is re-parented (daemons). PSS divides shared pages among the
  processes sharing them, so the sum does not double count; the RSS sum does.
* driver_maxrss_mb: the main process's peak RSS from the kernel (wait4 rusage).
* own_cpu_s: CPU time of the process and its reaped descendants (wait4 rusage).
* foreign_cpu_s / foreign_top: CPU time that other processes of the machine used while it
  ran (each process's CPU time at the end minus at the start; 0 for processes born during
  the run). machine_busy_cpu_s: the whole machine's busy CPU over the run, as a cross-check;
  machine_iowait_s: CPU time idle waiting for I/O (fsync-heavy workloads show it);
  machine_steal_s: CPU time the hypervisor gave to other guests (contention the foreign
  CPU figure cannot see).
* idle: before each run the harness waits until the machine is idle: busy CPU < 15 % over
  1 s, and no process left over by an earlier run. It gives up after 60 s and marks the
  run `idle.gave_up`.
* contaminated: foreign_cpu_s > 0.05 s + 10 % of one core over the wall time. Such a run
  is repeated, up to 2 more attempts; every attempt stays in the file, the report uses the
  clean ones (or, if none is clean, says so).
* result: the JSON the command printed on a line starting with `RESULT_JSON `; failing
  that, the last line of its stdout if it is a JSON object (the `tune run --json` summary).
* leftover_pids: descendants still alive when the main process exited (they are killed).

`{tmp}` in the command is replaced by a fresh, empty folder under bench/.work/<run id>/
(also passed as $BENCH_TMP). These folders are kept until the end of the `bench/run`
invocation, which removes them all: on ext4, creating files within ~30 s of deleting many
(a 1,000-trial experiment is ~6,000 files) is slowed by the kernel skipping recently
deleted inodes, which made each repetition of a file-creating workload slower than the
one before. The child runs without
PYTHONDONTWRITEBYTECODE, so Python caches compiled modules as it does on a user's machine.

psutil gives the machine's CPU counters when importable (else /proc/stat is read); the
process table is read from /proc directly (see snapshot()).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional, Set, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "bench", ".work")
IDLE_CPU_PCT = 15.0
IDLE_MAX_WAIT_S = 60.0
EXTRA_ATTEMPTS = 2
CLK_TCK = os.sysconf("SC_CLK_TCK")

try:
    import psutil  # type: ignore[import-not-found]
except ImportError:  # --no-peers on a fresh machine: read /proc directly
    psutil = None

SAMPLER = "psutil" if psutil is not None else "procfs"


# ---------------------------------------------------------------- process table

def snapshot() -> Dict[int, Tuple[int, int, str, float]]:
    """pid -> (ppid, session id, name, user+system CPU seconds) for every process.

    Read straight from /proc/<pid>/stat: about 4x cheaper than psutil.process_iter here,
    which matters on a 2-core machine where the sampler shares the CPUs with the command.
    """
    out: Dict[int, Tuple[int, int, str, float]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                s = f.read().decode(errors="replace")
        except OSError:
            continue
        i, j = s.find("("), s.rfind(")")
        fields = s[j + 2 :].split()
        # fields[0] is the state (field 3 of proc(5)): ppid 4, session 6, utime 14, stime 15
        out[int(d)] = (int(fields[1]), int(fields[3]), s[i + 1 : j], (int(fields[11]) + int(fields[12])) / CLK_TCK)
    return out


def machine_busy_s() -> float:
    """Busy CPU seconds of the whole machine since boot (user+nice+system+irq+softirq)."""
    if psutil is not None:
        t = psutil.cpu_times()
        return t.user + t.nice + t.system + t.irq + t.softirq
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / CLK_TCK


def machine_iowait_s() -> float:
    """Seconds the machine's CPUs sat idle waiting for I/O, since boot."""
    if psutil is not None:
        return getattr(psutil.cpu_times(), "iowait", 0.0)
    with open("/proc/stat") as f:
        return int(f.readline().split()[5]) / CLK_TCK


def machine_steal_s() -> float:
    """Seconds the hypervisor ran something else on this machine's virtual CPUs, since boot."""
    if psutil is not None:
        return getattr(psutil.cpu_times(), "steal", 0.0)
    with open("/proc/stat") as f:
        return int(f.readline().split()[8]) / CLK_TCK


def machine_total_s() -> float:
    if psutil is not None:
        return sum(psutil.cpu_times())
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v[:8]) / CLK_TCK


def cpu_busy_pct(interval: float) -> float:
    """Busy share of all CPUs over `interval` seconds, in percent."""
    b0, t0 = machine_busy_s(), machine_total_s()
    time.sleep(interval)
    b1, t1 = machine_busy_s(), machine_total_s()
    return 100.0 * (b1 - b0) / max(t1 - t0, 1e-9)


def read_mem_kb(pid: int) -> Tuple[int, int]:
    """(PSS, RSS) in kB from /proc/<pid>/smaps_rollup; (0, 0) if it is gone."""
    pss = rss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return pss, rss


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# ---------------------------------------------------------------- sampler

class Sampler(threading.Thread):
    """Follows the command's process tree: memory peaks and who used the CPU."""

    def __init__(self, root_pid: int, base: Dict[int, Tuple[int, int, str, float]]) -> None:
        super().__init__(daemon=True)
        self.root = root_pid
        self.sid = root_pid  # the command runs in a session of its own (start_new_session)
        self.mine: Set[int] = {root_pid}
        self.harness = os.getpid()
        self.base = {pid: v[3] for pid, v in base.items()}  # CPU at the start; absent = born during the run
        self.last: Dict[int, Tuple[str, float]] = {}
        self.stop_evt = threading.Event()
        self.t0 = time.perf_counter()
        self.peak_pss = self.peak_rss = self.peak_nproc = 0
        self.peak_breakdown: Dict[str, List[int]] = {}
        self.samples = 0
        self.series: List[Tuple[float, float, int]] = []  # (t, PSS MB, processes)
        self.names: Dict[int, str] = {}

    def sample(self) -> None:
        procs = snapshot()
        sid = self.sid
        for pid, (ppid, psid, _, _) in procs.items():
            if pid in self.mine or pid == self.harness:
                continue
            if sid > 0 and psid == sid:
                self.mine.add(pid)
                continue
            chain, cur = [], pid
            while cur in procs and cur not in self.mine and cur not in chain and cur > 1:
                chain.append(cur)
                cur = procs[cur][0]
            if cur in self.mine:
                self.mine.update(chain)
        for pid, (_, _, name, cpu) in procs.items():
            self.last[pid] = (name, cpu)
        pss = rss = n = 0
        breakdown: Dict[str, List[int]] = {}
        for pid in list(self.mine):
            if pid not in procs:
                continue
            p, r = read_mem_kb(pid)
            if r == 0 and not alive(pid):
                continue
            n += 1
            pss += p
            rss += r
            key = "main" if pid == self.root else self.label(pid, procs[pid][2])
            b = breakdown.setdefault(key, [0, 0, 0])
            b[0] += 1
            b[1] += p
            b[2] += r
        self.samples += 1
        self.series.append((round(time.perf_counter() - self.t0, 3), round(pss / 1024, 1), n))
        self.peak_nproc = max(self.peak_nproc, n)
        self.peak_rss = max(self.peak_rss, rss)
        if pss > self.peak_pss:
            self.peak_pss = pss
            self.peak_breakdown = breakdown

    def label(self, pid: int, comm: str) -> str:
        """A process's name for the breakdown; Python processes are named by script or module."""
        name = self.names.get(pid)
        if name is None:
            name = comm
            if comm.startswith("python"):
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        argv = f.read().decode(errors="replace").split("\0")
                    if "-m" in argv[1:-1]:
                        name = "python -m " + argv[argv.index("-m") + 1]
                    else:
                        script = next((a for a in argv[1:] if a.endswith(".py")), "")
                        name = "python " + os.path.basename(script) if script else comm
                except OSError:
                    pass
            self.names[pid] = name
        return name

    def run(self) -> None:
        while not self.stop_evt.is_set():
            self.sample()
            age = time.perf_counter() - self.t0
            # Densely at first, so that sub-second startups are seen at all; then 0.1 s, 0.2 s.
            interval = 0.02 if age < 1.0 else (0.1 if age < 5.0 else 0.2)
            self.stop_evt.wait(interval)

    def foreign(self) -> Tuple[float, List[Tuple[str, int, float]]]:
        total = 0.0
        top = []
        for pid, (name, cpu) in self.last.items():
            if pid in self.mine or pid == self.harness:
                continue
            d = max(0.0, cpu - self.base.get(pid, 0.0))
            total += d
            if d >= 0.05:
                top.append((name, pid, round(d, 2)))
        return round(total, 3), sorted(top, key=lambda x: -x[2])[:6]


# ---------------------------------------------------------------- one run

def wait_idle(exclude: Set[int]) -> Dict[str, Any]:
    t0 = time.monotonic()
    while True:
        cpu = cpu_busy_pct(1.0)
        left = [pid for pid in exclude if alive(pid)]
        waited = time.monotonic() - t0
        if (cpu < IDLE_CPU_PCT and not left) or waited > IDLE_MAX_WAIT_S:
            return {"cpu_pct_1s": round(cpu, 1), "waited_s": round(waited, 1),
                    "gave_up": not (cpu < IDLE_CPU_PCT and not left), "leftovers_alive": left}


def display(cmd: List[str]) -> str:
    def rel(a: str) -> str:
        if a.startswith(ROOT + os.sep):
            return os.path.relpath(a, ROOT)
        return a
    return " ".join(shlex.quote(rel(a)).replace("'{tmp}'", "{tmp}") for a in cmd)


def run_once(args: argparse.Namespace, cmd: List[str], rep: int, attempt: int, warmup: bool,
             leftovers: Set[int]) -> Dict[str, Any]:
    idle = wait_idle(leftovers)
    work = os.path.join(WORK, args.run_id)
    os.makedirs(work, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f"{args.name}-", dir=work)
    argv = [a.replace("{tmp}", tmp) for a in cmd]
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["BENCH_TMP"] = tmp
    cwd = os.path.join(ROOT, args.cwd) if args.cwd else ROOT
    tag = f"{args.name}.{'warmup' if warmup else rep}" + (f".a{attempt}" if attempt else "")
    log_path = os.path.join(args.logs, tag + ".log")
    start_utc = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")

    base = snapshot()
    busy0 = machine_busy_s()
    iowait0 = machine_iowait_s()
    steal0 = machine_steal_s()
    me0 = os.times()
    with open(log_path, "wb") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        sampler = Sampler(proc.pid, base)
        sampler.start()
        killed = threading.Event()

        def _kill() -> None:
            killed.set()
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass

        timer = threading.Timer(args.timeout, _kill)
        timer.daemon = True
        timer.start()
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        timer.cancel()
        timed_out = killed.is_set()
        proc.returncode = os.waitstatus_to_exitcode(status)
    sampler.stop_evt.set()
    sampler.join()
    sampler.sample()  # final CPU readings of the others
    busy = machine_busy_s() - busy0
    iowait = machine_iowait_s() - iowait0
    steal = machine_steal_s() - steal0
    me1 = os.times()
    foreign, top = sampler.foreign()
    left = sorted(pid for pid in sampler.mine if pid != proc.pid and alive(pid))
    for pid in left:  # our own descendants that outlived the command
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    leftovers.update(left)
    # {tmp} is kept until bench/run ends: see the module docstring.

    result = None
    last_line = ""
    with open(log_path, errors="replace") as f:
        for line in f:
            if line.startswith("RESULT_JSON "):
                try:
                    result = json.loads(line[len("RESULT_JSON "):])
                except ValueError:
                    pass
            if line.strip():
                last_line = line.strip()
    if result is None and last_line.startswith("{"):
        try:
            result = json.loads(last_line)
        except ValueError:
            pass
    threshold = 0.05 + 0.10 * wall
    rec: Dict[str, Any] = {
        "type": "run",
        "run_id": args.run_id,
        "invocation": args.invocation,
        "section": args.section,
        "name": args.name,
        "rep": rep,
        "attempt": attempt,
        "warmup": warmup,
        "start_utc": start_utc,
        "cmd": display(cmd),
        "cwd": os.path.relpath(cwd, ROOT),
        "rc": "timeout" if timed_out else proc.returncode,
        "wall_s": round(wall, 4),
        "peak_pss_mb": round(sampler.peak_pss / 1024, 1),
        "peak_rss_sum_mb": round(sampler.peak_rss / 1024, 1),
        "peak_nproc": sampler.peak_nproc,
        "pss_breakdown_at_peak": {k: {"n": v[0], "pss_mb": round(v[1] / 1024, 1), "rss_mb": round(v[2] / 1024, 1)}
                                  for k, v in sorted(sampler.peak_breakdown.items(), key=lambda kv: -kv[1][1])},
        "mem_samples": sampler.samples,
        "driver_maxrss_mb": round(ru.ru_maxrss / 1024, 1),
        "own_cpu_s": round(ru.ru_utime + ru.ru_stime, 3),
        "foreign_cpu_s": foreign,
        "foreign_top": top,
        "machine_busy_cpu_s": round(busy, 3),
        "machine_iowait_s": round(iowait, 3),
        "machine_steal_s": round(steal, 3),
        "harness_cpu_s": round((me1.user + me1.system) - (me0.user + me0.system), 3),
        "contaminated": foreign > threshold,
        "contamination_threshold_s": round(threshold, 3),
        "idle": idle,
        "leftover_pids": left,
        "sampler": SAMPLER,
        "log": os.path.relpath(log_path, ROOT),
        "result": result,
    }
    series_path = os.path.join(args.logs, tag + ".pss.json")
    with open(series_path, "w") as f:
        json.dump({"name": args.name, "t_pss_nproc": sampler.series}, f)
    with open(args.out, "a") as f:
        f.write(json.dumps(rec) + "\n")
    short = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in (result or {}).items()
             if isinstance(v, (int, float, str)) and k not in ("cmd",)}
    flags = []
    if timed_out:
        flags.append("TIMEOUT")
    if rec["contaminated"]:
        flags.append(f"CONTAMINATED (foreign {foreign} s > {rec['contamination_threshold_s']} s: {top})")
    if idle["gave_up"]:
        flags.append("NOT-IDLE")
    if left:
        flags.append(f"LEFTOVER {left}")
    if proc.returncode != 0 or timed_out:
        flags.append(f"FAILED rc={rec['rc']} (see {rec['log']})")
    elif result is None:
        flags.append(f"FAILED: no RESULT_JSON line (see {rec['log']})")
    print(f"  {tag:<40} wall {wall:8.3f} s  pss {rec['peak_pss_mb']:7.1f} MB  procs {sampler.peak_nproc:3d}  "
          f"foreign {foreign:5.2f} s  {' '.join(flags)} {json.dumps(short)[:300]}", flush=True)
    return rec


def cmd_run(args: argparse.Namespace, cmd: List[str]) -> int:
    os.makedirs(args.logs, exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    leftovers: Set[int] = set()
    failed = 0
    plan = [(True, -1)] * args.warmup + [(False, r) for r in range(args.reps)]
    for warmup, rep in plan:
        for attempt in range(1 + EXTRA_ATTEMPTS):
            rec = run_once(args, cmd, max(rep, 0), attempt, warmup, leftovers)
            if rec["rc"] != 0 or rec["result"] is None:
                failed += 1
                break
            if not rec["contaminated"] or warmup:
                break
    if failed:
        print(f"  {args.name}: {failed} run(s) failed", file=sys.stderr)
    return 1 if failed else 0


# ---------------------------------------------------------------- run metadata

def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_gib() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    return 0.0


def _versions(python: str, dists: List[str]) -> Dict[str, Any]:
    code = ("import json, platform, sys\nfrom importlib.metadata import version\nout = {'python': platform.python_version()}\n"
            f"for d in {dists!r}:\n"
            "    try:\n        out[d] = version(d)\n    except Exception:\n        out[d] = None\n"
            "print(json.dumps(out))")
    try:
        r = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
        return json.loads(r.stdout.strip().splitlines()[-1])
    except Exception as e:  # noqa: BLE001
        return {"error": f"{type(e).__name__}: {e}"}


def _git(*a: str) -> Optional[str]:
    try:
        r = subprocess.run(["git", *a], capture_output=True, text=True, timeout=10, cwd=ROOT)
        return r.stdout.strip() if r.returncode == 0 else None
    except Exception:  # noqa: BLE001
        return None


def cmd_meta(args: argparse.Namespace) -> int:
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    if args.finished:
        rec = {"type": "run_end", "run_id": args.run_id, "elapsed_s": args.elapsed_s,
               "end_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    else:
        rec = {
            "type": "run_start",
            "run_id": args.run_id,
            "invocation": args.invocation,
            "quick": bool(args.quick),
            "sections": args.sections.split(","),
            "start_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": {"cpu_model": _cpu_model(), "cores": os.cpu_count(), "ram_gib": _mem_gib(),
                        "kernel": platform.release(), "os": platform.platform()},
            "hyperfleet_env": _versions(args.hf_python, ["hyperfleet", "cloudpickle", "pandas"]),
            "peers_env": _versions(args.peer_python, ["ray", "optuna", "pandas", "numpy", "psutil", "matplotlib"])
            if args.peer_python else None,
            "git_commit": _git("rev-parse", "--short", "HEAD"),
            "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
            "sampler": SAMPLER,
        }
    with open(args.out, "a") as f:
        f.write(json.dumps(rec) + "\n")
    return 0


def main() -> int:
    argv = sys.argv[1:]
    cmd: List[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, cmd = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    r = sub.add_parser("run", help="run one command (after --) several times")
    r.add_argument("--name", required=True)
    r.add_argument("--section", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--logs", required=True)
    r.add_argument("--run-id", required=True)
    r.add_argument("--invocation", default="")
    r.add_argument("--reps", type=int, default=3)
    r.add_argument("--warmup", type=int, default=1)
    r.add_argument("--cwd", default="")
    r.add_argument("--timeout", type=float, default=900.0)
    m = sub.add_parser("meta", help="record the machine, versions and date of a run")
    m.add_argument("--out", required=True)
    m.add_argument("--run-id", required=True)
    m.add_argument("--invocation", default="")
    m.add_argument("--quick", type=int, default=0)
    m.add_argument("--sections", default="")
    m.add_argument("--hf-python", default=".venv/bin/python")
    m.add_argument("--peer-python", default=None)
    m.add_argument("--finished", action="store_true")
    m.add_argument("--elapsed-s", type=float, default=None)
    args = ap.parse_args(argv)
    if args.what == "run":
        if not cmd:
            ap.error("run: give the command after --")
        return cmd_run(args, cmd)
    return cmd_meta(args)


if __name__ == "__main__":
    sys.exit(main())
