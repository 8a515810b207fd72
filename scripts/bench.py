#!/usr/bin/env python3
"""mqttclient's reproducible benchmark suite (Python 3.11 standard library only).

Installs what is missing (mosquitto and /usr/bin/time; libmosquitto-dev for the idle section and
the comparison; libpaho-mqtt-dev for the store section and the comparison), builds the library
(`cargo build --release --lib`), the benchmark client c_examples/mqttc_bench.c, the idle
programs benches/idle/*.c and Paho C's publisher benches/paho_store.c, starts its own mosquitto
on a free loopback port (the configuration shared/bench/compare.py uses), runs the sections,
stops the broker, and prints a Markdown report on standard output (progress goes to standard
error).

Sections (each run --rounds times, interleaved; the report shows medians):
  modes    pub, e2e, latency x QoS 0, 1, 2 with 64-byte payloads (count 100000, latency 20000,
           inflight 100)
  scale    pub at QoS 0 and 1, 100000 vs 1000000 messages: time and CPU per message must not grow
           by more than 10% (1M/100k <= 1.10)
  payload  pub at QoS 0 and 1 with 64 KiB (20000 messages) and 1 MiB (1000 messages) payloads
  idle     resident memory of one idle connected client: mqttclient vs libmosquitto
  trie     `cargo bench --bench trie` (target: >= 2,000,000 matches/s)
  floor    latency mode at QoS 0 and 1 (latency count): the CPU per round trip of mqttclient and of
           libmosquitto (compare.py's mosq_bench.c, built from beside compare.py when it is found)
           beside benches/latency_floor.c, a raw-socket client that spends the least any client
           can (blocking recv, and the event-loop shape: epoll_wait then recv), so the report
           shows how far below libmosquitto any client can go (target: <= 0.5x libmosquitto)
  store    pub at QoS 1 and 2 (count 50000): mqttclient in memory and with its message store
           (mqttc_bench --store, sync none, batch, every) beside Paho C without and with its file
           persistence (benches/paho_store.c), same window; a fresh directory per run, in the
           system's temporary directory (targets: batch >= 0.8x in memory, and ahead of Paho's
           file persistence)
  fleet    many clients in one process (`mqttc_bench --mode clients` on a pool of 2 threads) beside
           libmosquitto, one mosquitto_loop_start thread a client (benches/fleet_mosquitto.c), and
           Paho C's MQTTAsync, which shares its threads (benches/fleet_paho.c), at 1,000, 5,000 and
           10,000 clients (--fleet-sizes), each subscribed at QoS 1 to its own topic and
           publishing to its neighbour's every second for 5 s; one mosquitto with max_connections
           -1 and the descriptor limit raised to its hard maximum; one run each (only when --only
           asks for it: it takes minutes). A library that does not connect every client at a size
           is not run at the larger ones; the report says what it reached and why
  compare  shared/bench/compare.py side by side with libmosquitto, Paho C and a raw-socket client
           (only when --compare PATH is given, or ../shared/bench/compare.py exists beside the
           repository and --quick is not given), with the targets: pub >= 0.95x raw (payloads:
           >= 0.90x raw), e2e >= 1.2x libmosquitto, CPU/msg <= 0.5x libmosquitto, latency p50 and
           p99 <= libmosquitto

CPU time and peak RSS are the benchmark process's own, from the kernel's accounting of that process
(user + system time from wait4; ru_maxrss as /usr/bin/time reports it, which the package time
installs when missing); "CPU us/msg" is that CPU time over the message count.

Exit status: 0 done, 1 a build or a run of ours failed (the message says which; in the store and
compare sections a peer's failed run is only listed, and the targets against it are n/a), 2 bad
command line, 130 interrupted. Every subprocess has a timeout; the broker is stopped on every exit
path.

Examples:
  scripts/bench.py --quick                       smoke test (tiny counts, 1 round, < 1 minute)
  scripts/bench.py --rounds 5 --json bench.json  the full suite
  scripts/bench.py --only modes,idle
  scripts/bench.py --only store --rounds 3       the message store beside Paho C's (5-7 min)
  scripts/bench.py --only fleet                  the fleet beside libmosquitto and Paho C (~5 min)
  scripts/bench.py --compare ../shared/bench/compare.py --only compare
"""

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(ROOT, "target", "release")
BENCH_EXE = os.path.join(RELEASE, "mqttc_bench")
IDLE_OURS = os.path.join(RELEASE, "idle_mqttclient")
IDLE_MOSQ = os.path.join(RELEASE, "idle_libmosquitto")
FLOOR_EXE = os.path.join(RELEASE, "latency_floor")
PAHO_STORE = os.path.join(RELEASE, "paho_store")
FLEET_MOSQ = os.path.join(RELEASE, "fleet_mosquitto")
FLEET_PAHO = os.path.join(RELEASE, "fleet_paho")
MOSQ_LATENCY = os.path.join(RELEASE, "mosq_bench")  # compare.py's libmosquitto client, built here
DEFAULT_COMPARE = os.path.join(os.path.dirname(ROOT), "shared", "bench", "compare.py")
MOSQUITTO_H = "/usr/include/mosquitto.h"
PAHO_H = "/usr/include/MQTTAsync.h"
GNU_TIME = "/usr/bin/time"
HAVE_GNU_TIME = os.access(GNU_TIME, os.X_OK)  # set again after installing
CFLAGS = ["-std=c11", "-O2", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Wextra", "-Werror"]

SECTIONS = ["modes", "scale", "payload", "idle", "trie", "floor", "store", "fleet", "compare"]
OPT_IN = ["fleet", "compare"]  # run only when asked for (compare also when compare.py is found)
INFLIGHT = 100
SIZE = 64

# Counts: the full suite, and --quick (a smoke test: the numbers mean nothing at these sizes).
# Latency runs 20,000 round trips, not compare.py's default 5,000: /usr/bin/time gives compare.py
# CPU times in 10 ms steps, too coarse at 5,000 (about 125 ms of ours) to decide the CPU target.
FULL = {"count": 100_000, "lat_count": 20_000, "scale": (100_000, 1_000_000),
        "payload": ((65_536, 20_000), (1_048_576, 1_000)), "trie_rounds": None, "store_count": 50_000,
        "fleet_sizes": (1_000, 5_000, 10_000), "fleet_hold_s": 5}
QUICK = {"count": 2_000, "lat_count": 200, "scale": (2_000, 20_000),
         "payload": ((65_536, 200), (1_048_576, 20)), "trie_rounds": 3, "store_count": 500,
         "fleet_sizes": (20, 100), "fleet_hold_s": 1}

# Targets (mqttclient relative to a peer, or absolute).
T_PUB_VS_RAW = 0.95
T_PAYLOAD_VS_RAW = 0.90
T_E2E_VS_MOSQ = 1.2
T_CPU_VS_MOSQ = 0.5
T_LAT_VS_MOSQ = 1.0
T_SCALE = 1.10
T_TRIE = 2_000_000
T_STORE_VS_MEMORY = 0.8  # our store with batched sync over our in-memory default
T_STORE_VS_PAHO = 1.0  # ... over Paho C's file persistence
CPU_STEP_S = 0.02  # compare.py's CPU time per run is up to this much above what it prints

BUILD_TIMEOUT = 1800  # cargo may wait for other builds' lock on target/
GCC_TIMEOUT = 120
APT_TIMEOUT = 900


class BenchError(Exception):
    """A failure that ends the run with a message (exit status 1)."""


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def _child_setup():
    """In each child: its own session (a terminal's Ctrl-C reaches only us; we stop the children,
    so nothing is half-killed), and SIGTERM when this script dies without cleaning up."""
    os.setsid()
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _kill_group(p):
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def fmt_cmd(cmd):
    return " ".join(str(c) for c in cmd)


def run_tool(cmd, timeout, what, capture=False, env=None):
    """Runs a build or setup command. Its output goes to our stderr (the report stays clean on
    stdout) unless `capture`, then its stdout is returned. Raises BenchError on failure/timeout."""
    log(f"{what}: {fmt_cmd(cmd)}")
    try:
        p = subprocess.Popen([str(c) for c in cmd], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE if capture else sys.stderr,
                             stderr=sys.stderr, stdin=subprocess.DEVNULL,
                             preexec_fn=_child_setup, text=True)
    except OSError as e:
        raise BenchError(f"{what}: cannot run {cmd[0]}: {e}") from e
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(p)
        p.wait()
        raise BenchError(f"{what}: timed out after {timeout} s: {fmt_cmd(cmd)}") from None
    except BaseException:
        _kill_group(p)
        p.wait()
        raise
    if p.returncode != 0:
        raise BenchError(f"{what} failed (exit status {p.returncode}): {fmt_cmd(cmd)}")
    return out


def quiet(cmd, timeout=30):
    """The first line a command prints (stdout + stderr), or None; for describing the machine."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (r.stdout + r.stderr).strip().splitlines()
    return lines[0].strip() if lines else None


# ---- dependencies and builds -------------------------------------------------------------------

def mosquitto_exe():
    exe = shutil.which("mosquitto")
    if exe:
        return exe
    return "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None


def ensure_packages(sections):
    """Installs what the selected sections need and is missing, with apt-get (as scripts/deps.sh):
    mosquitto; /usr/bin/time (package time: peak RSS, see measure); libmosquitto-dev for the idle
    section's peer and the comparison; libpaho-mqtt-dev for the store section's peer and the
    comparison. Without apt-get, only the optional ones may stay missing. Returns whether
    libmosquitto's header is there."""
    global HAVE_GNU_TIME
    compare = "compare" in sections
    want = [("mosquitto", mosquitto_exe() is not None, True),
            ("time", os.access(GNU_TIME, os.X_OK), compare)]
    if {"idle", "floor", "fleet"} & set(sections) or compare:
        want.append(("libmosquitto-dev", os.path.exists(MOSQUITTO_H), compare))
    if {"store", "fleet"} & set(sections) or compare:
        want.append(("libpaho-mqtt-dev", os.path.exists(PAHO_H), compare))
    need = [name for name, present, _ in want if not present]
    missing_tools = [t for t in ("gcc", "cargo") if not shutil.which(t)]
    if missing_tools:
        raise BenchError(f"not found on PATH: {', '.join(missing_tools)} (needed to build)")
    if need and not shutil.which("apt-get"):
        essential = [name for name, present, ess in want if not present and ess]
        if essential:
            raise BenchError(f"missing {', '.join(essential)} and no apt-get to install them")
        log(f"missing {', '.join(need)} and no apt-get: going on without them "
            "(no libmosquitto in idle, no Paho C in store; peak RSS from wait4 includes this "
            "script's own)")
    elif need:
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run_tool(sudo + ["apt-get", "update", "-qq"], APT_TIMEOUT, "apt-get update", env=env)
        run_tool(sudo + ["apt-get", "install", "-y", "-qq", *need], APT_TIMEOUT,
                 f"installing {' '.join(need)}", env=env)
        if not mosquitto_exe():
            raise BenchError("mosquitto is still not installed")
    HAVE_GNU_TIME = os.access(GNU_TIME, os.X_OK)
    return os.path.exists(MOSQUITTO_H)


def link_ours():
    return [f"-L{RELEASE}", f"-Wl,-rpath,{RELEASE}", "-lmqttclient", "-lpthread"]


def build(sections, have_mosq_h, compare_path):
    run_tool(["cargo", "build", "--release", "--lib"], BUILD_TIMEOUT, "building the library")
    if {"modes", "scale", "payload", "floor", "store", "fleet", "compare"} & set(sections):
        run_tool(["gcc", *CFLAGS, "-Iinclude", "c_examples/mqttc_bench.c", *link_ours(),
                  "-o", BENCH_EXE], GCC_TIMEOUT, "building mqttc_bench")
    if "idle" in sections:
        run_tool(["gcc", *CFLAGS, "-Iinclude", "benches/idle/idle_mqttclient.c", *link_ours(),
                  "-o", IDLE_OURS], GCC_TIMEOUT, "building idle_mqttclient")
        if have_mosq_h:
            run_tool(["gcc", *CFLAGS, "benches/idle/idle_libmosquitto.c", "-lmosquitto",
                      "-lpthread", "-o", IDLE_MOSQ], GCC_TIMEOUT, "building idle_libmosquitto")
    if "floor" in sections:
        run_tool(["gcc", *CFLAGS, "benches/latency_floor.c", "-o", FLOOR_EXE], GCC_TIMEOUT,
                 "building latency_floor")
        peer_dir = os.path.dirname(compare_path) if compare_path else None
        if have_mosq_h and peer_dir and os.path.exists(os.path.join(peer_dir, "mosq_bench.c")):
            # As compare.py builds it (its flags, not ours: it is their program).
            run_tool(["gcc", "-O2", "-I", peer_dir, "-o", MOSQ_LATENCY,
                      os.path.join(peer_dir, "mosq_bench.c"), "-lmosquitto", "-lpthread"],
                     GCC_TIMEOUT, "building compare.py's mosq_bench")
        elif os.path.exists(MOSQ_LATENCY):
            os.remove(MOSQ_LATENCY)  # not one left from another version of compare.py
    if "store" in sections:
        if os.path.exists(PAHO_H):
            run_tool(["gcc", *CFLAGS, "benches/paho_store.c", "-lpaho-mqtt3a", "-lpthread",
                      "-o", PAHO_STORE], GCC_TIMEOUT, "building paho_store")
        elif os.path.exists(PAHO_STORE):
            os.remove(PAHO_STORE)  # not one built against a Paho C no longer installed
    if "fleet" in sections:
        for exe, header, lib in ((FLEET_MOSQ, MOSQUITTO_H, "-lmosquitto"), (FLEET_PAHO, PAHO_H, "-lpaho-mqtt3a")):
            name = os.path.basename(exe)
            if os.path.exists(header):
                run_tool(["gcc", *CFLAGS, f"benches/{name}.c", lib, "-lpthread", "-o", exe],
                         GCC_TIMEOUT, f"building {name}")
            elif os.path.exists(exe):
                os.remove(exe)  # not one built against a library no longer installed


# ---- the broker --------------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _raise_nofile():
    """The descriptor limit up to its hard maximum: a connection takes one."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _fleet_child_setup():
    _child_setup()
    _raise_nofile()


class Broker:
    """mosquitto on a free loopback port, configured exactly as compare.py configures its own
    (`fleet`: also without a connection limit and with the descriptor limit raised)."""

    def __init__(self, fleet=False):
        self.fleet = fleet
        self.exe = mosquitto_exe()
        self.dir = tempfile.mkdtemp(prefix="mqttc-bench-")
        self.proc = None
        self.port = None
        self.errlog = os.path.join(self.dir, "mosquitto.log")
        self.conf_text = None

    def start(self):
        for _ in range(5):  # another process may take the probed port meanwhile
            self.port = free_port()
            self.conf_text = (f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                              "max_inflight_messages 0\nmax_queued_messages 0\n"
                              "persistence false\nlog_type error\n"
                              + ("max_connections -1\n" if self.fleet else ""))
            conf = os.path.join(self.dir, "mosquitto.conf")
            with open(conf, "w") as f:
                f.write(self.conf_text)
            with open(self.errlog, "w") as err:
                self.proc = subprocess.Popen([self.exe, "-c", conf], stdout=err, stderr=err,
                                             stdin=subprocess.DEVNULL,
                                             preexec_fn=_fleet_child_setup if self.fleet else _child_setup)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                    log(f"mosquitto listening on 127.0.0.1:{self.port}")
                    return
                except OSError:
                    time.sleep(0.05)
            self.stop(remove=False)
        raise BenchError(f"mosquitto did not start; its log: {self.log_tail()}")

    def log_tail(self):
        try:
            with open(self.errlog) as f:
                return f.read().strip()[-500:] or "(empty)"
        except OSError:
            return "(none)"

    def cpu_s(self):
        """The CPU time (user and system) mosquitto has used so far, from /proc/PID/stat."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            # The fields after the command name, which is in parentheses and may hold spaces:
            # utime and stime are the 12th and 13th of them.
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def check_alive(self):
        if self.proc is None or self.proc.poll() is not None:
            raise BenchError(f"mosquitto exited (status {self.proc.returncode if self.proc else '?'});"
                             f" its log: {self.log_tail()}")

    def stop(self, remove=True):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if remove:
            shutil.rmtree(self.dir, ignore_errors=True)


# ---- measured runs -----------------------------------------------------------------------------

def measure(cmd, timeout, what):
    """Runs one benchmark program; returns its JSON line (the last line starting with "{") plus
    "cpu_s" (user + system time), "rss_peak_kb" (ru_maxrss) and "wall_s". Raises BenchError when
    it fails, prints no JSON, or outlives `timeout`.

    CPU time is wait4's (microseconds; it includes /usr/bin/time's own, about a millisecond).
    Peak RSS is the program's ru_maxrss as /usr/bin/time reports it: a process forked from this
    script inherits Python's resident size as its ru_maxrss floor (Linux keeps the pre-exec
    high-water mark), one forked from /usr/bin/time only that tool's ~2 MB. Without
    /usr/bin/time, wait4's ru_maxrss here, which is at least Python's own."""
    cmd = [str(c) for c in cmd]
    with tempfile.TemporaryDirectory(prefix="mqttc-run-") as tmp:
        out_path, err_path, time_path = (os.path.join(tmp, n) for n in ("out", "err", "time"))
        full = [GNU_TIME, "-o", time_path, "-f", "%M", *cmd] if HAVE_GNU_TIME else cmd
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            t0 = time.monotonic()
            p = subprocess.Popen(full, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                 preexec_fn=_child_setup)
        status = ru = None
        try:
            pause = 0.001
            while True:
                pid, status, ru = os.wait4(p.pid, os.WNOHANG)
                if pid:
                    break
                if time.monotonic() - t0 > timeout:
                    _kill_group(p)
                    os.wait4(p.pid, 0)
                    p.returncode = -signal.SIGKILL
                    raise BenchError(f"{what}: timed out after {timeout:.0f} s: {fmt_cmd(cmd)}")
                time.sleep(pause)
                pause = min(pause * 2, 0.02)
        except BaseException:
            if p.returncode is None:
                _kill_group(p)
                os.wait4(p.pid, 0)
                p.returncode = -signal.SIGKILL
            raise
        wall = time.monotonic() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        with open(out_path, "rb") as f:
            stdout = f.read().decode(errors="replace")
        with open(err_path, "rb") as f:
            stderr = f.read().decode(errors="replace").strip()
        rss = None
        if HAVE_GNU_TIME:
            try:
                with open(time_path) as f:
                    rss = int(f.read().strip().splitlines()[-1])
            except (OSError, ValueError, IndexError):
                rss = None
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if p.returncode != 0 or not lines:
        why = f"exit status {p.returncode}" if p.returncode != 0 else "no JSON line on stdout"
        raise BenchError(f"{what} failed ({why}): {fmt_cmd(cmd)}\n  stderr: {stderr[-800:] or '(empty)'}")
    try:
        res = json.loads(lines[-1])
    except json.JSONDecodeError as e:
        raise BenchError(f"{what}: bad JSON line {lines[-1]!r}: {e}") from e
    if HAVE_GNU_TIME and rss is None:
        raise BenchError(f"{what}: /usr/bin/time reported no peak RSS: {fmt_cmd(cmd)}")
    res["cpu_s"] = ru.ru_utime + ru.ru_stime
    res["rss_peak_kb"] = rss if HAVE_GNU_TIME else ru.ru_maxrss
    res["wall_s"] = wall
    return res


def run_timeout(count, size):
    """Generous: a run at a fraction of the expected speed still finishes."""
    return 60 + count * 2e-4 + count * size / 20e6


class Runner:
    def __init__(self, broker):
        self.broker = broker

    def bench(self, mode, qos, count, size=SIZE, inflight=INFLIGHT, exe=BENCH_EXE, extra=(),
              timeout=None):
        """One run of `exe` (mqttc_bench, or a peer with its command line and output) with
        `extra` arguments; `timeout` defaults to run_timeout's."""
        self.broker.check_alive()
        what = f"{os.path.basename(exe)} {mode} QoS {qos} count {count} size {size}"
        if extra:
            what += " " + fmt_cmd(extra)
        res = measure([exe, "--port", self.broker.port, "--mode", mode, "--qos", qos,
                       "--count", count, "--size", size, "--inflight", inflight, *extra],
                      timeout or run_timeout(count, size), what)
        for key in ("secs", "p50_us" if mode == "latency" else "msgs_per_s"):
            if not isinstance(res.get(key), (int, float)):
                raise BenchError(f"{what}: no number {key!r} in {res}")
        if res.get("count") != count:
            raise BenchError(f"{what}: reported count {res.get('count')}, asked for {count}")
        res["cpu_us_per_msg"] = res["cpu_s"] / count * 1e6
        res["us_per_msg"] = res["secs"] / count * 1e6
        return res


def med(runs, key):
    return statistics.median(r[key] for r in runs)


def spread(runs, key):
    """(max - min) / median of the rounds, in percent."""
    vals = [r[key] for r in runs]
    m = statistics.median(vals)
    return (max(vals) - min(vals)) / m * 100 if m else 0.0


def summarize(runs, keys):
    s = {k: med(runs, k) for k in keys if all(k in r for r in runs)}
    s["rounds"] = runs
    return s


# ---- sections ----------------------------------------------------------------------------------

def section_modes(run, cfg, rounds):
    configs = [(m, q) for m in ("pub", "e2e", "latency") for q in (0, 1, 2)]
    runs = {c: [] for c in configs}
    for r in range(rounds):
        for mode, qos in configs:
            n = cfg["lat_count"] if mode == "latency" else cfg["count"]
            res = run.bench(mode, qos, n)
            runs[(mode, qos)].append(res)
            main = (f"p50 {res['p50_us']:.0f} us" if mode == "latency"
                    else f"{res['msgs_per_s']:,.0f} msgs/s")
            log(f"modes round {r + 1}/{rounds}: {mode} QoS {qos}: {main}, "
                f"{res['cpu_us_per_msg']:.2f} us CPU/msg")
    rows = []
    for (mode, qos), rs in runs.items():
        row = {"mode": mode, "qos": qos, "size": SIZE, "count": rs[0]["count"], "inflight": INFLIGHT}
        keys = ["secs", "cpu_us_per_msg", "rss_peak_kb"]
        keys += ["p50_us", "p99_us", "max_us"] if mode == "latency" else ["msgs_per_s"]
        row.update(summarize(rs, keys))
        row["spread_pct"] = spread(rs, "p50_us" if mode == "latency" else "msgs_per_s")
        rows.append(row)
    return {"rows": rows}


def section_scale(run, cfg, rounds):
    small, large = cfg["scale"]
    runs = {(q, n): [] for q in (0, 1) for n in (small, large)}
    for r in range(rounds):
        for (qos, n), rs in runs.items():
            res = run.bench("pub", qos, n)
            rs.append(res)
            log(f"scale round {r + 1}/{rounds}: pub QoS {qos} count {n}: "
                f"{res['us_per_msg']:.3f} us/msg, {res['cpu_us_per_msg']:.3f} us CPU/msg, "
                f"peak RSS {res['rss_peak_kb']} KB")
    rows = []
    for qos in (0, 1):
        s = summarize(runs[(qos, small)], ["us_per_msg", "cpu_us_per_msg", "msgs_per_s", "rss_peak_kb"])
        lg = summarize(runs[(qos, large)], ["us_per_msg", "cpu_us_per_msg", "msgs_per_s", "rss_peak_kb"])
        time_ratio = lg["us_per_msg"] / s["us_per_msg"]
        cpu_ratio = lg["cpu_us_per_msg"] / s["cpu_us_per_msg"] if s["cpu_us_per_msg"] else float("inf")
        rows.append({"mode": "pub", "qos": qos, "size": SIZE, "small_count": small, "large_count": large,
                     "small": s, "large": lg, "time_ratio": time_ratio, "cpu_ratio": cpu_ratio,
                     "target_max_ratio": T_SCALE,
                     "met": time_ratio <= T_SCALE and cpu_ratio <= T_SCALE})
    return {"rows": rows}


def section_payload(run, cfg, rounds):
    configs = [(q, size, n) for size, n in cfg["payload"] for q in (0, 1)]
    runs = {c: [] for c in configs}
    for r in range(rounds):
        for qos, size, n in configs:
            res = run.bench("pub", qos, n, size=size)
            runs[(qos, size, n)].append(res)
            log(f"payload round {r + 1}/{rounds}: pub QoS {qos} size {size} count {n}: "
                f"{res['msgs_per_s'] * size / 1e6:,.0f} MB/s, peak RSS {res['rss_peak_kb']} KB")
    rows = []
    for (qos, size, n), rs in runs.items():
        for x in rs:
            x["mb_per_s"] = x["msgs_per_s"] * size / 1e6
        row = {"mode": "pub", "qos": qos, "size": size, "count": n, "inflight": INFLIGHT}
        row.update(summarize(rs, ["msgs_per_s", "mb_per_s", "cpu_us_per_msg", "rss_peak_kb", "secs"]))
        row["spread_pct"] = spread(rs, "msgs_per_s")
        rows.append(row)
    return {"rows": rows}


def section_idle(broker, rounds):
    progs = [("mqttclient", IDLE_OURS)]
    if os.path.exists(IDLE_MOSQ):
        progs.append(("libmosquitto", IDLE_MOSQ))
    runs = {name: [] for name, _ in progs}
    for r in range(rounds):
        for name, exe in progs:
            broker.check_alive()
            res = measure([exe, "--port", broker.port], 30, f"idle {name}")
            if res.get("lib") != name or not isinstance(res.get("rss_kb"), int):
                raise BenchError(f"idle {name}: unexpected output {res}")
            runs[name].append(res)
            log(f"idle round {r + 1}/{rounds}: {name}: {res['rss_kb']} KB resident")
    out = {name: summarize(rs, ["rss_kb", "rss_peak_kb"]) for name, rs in runs.items()}
    if "libmosquitto" in out:
        ours, theirs = out["mqttclient"]["rss_kb"], out["libmosquitto"]["rss_kb"]
        out["ratio_vs_libmosquitto"] = ours / theirs
        out["met"] = ours <= theirs
    return out


def section_trie(cfg, rounds):
    env = dict(os.environ)
    if cfg["trie_rounds"]:
        env["TRIE_BENCH_ROUNDS"] = str(cfg["trie_rounds"])
    runs = []
    for r in range(rounds):
        out = run_tool(["cargo", "bench", "--bench", "trie"], BUILD_TIMEOUT,
                       f"trie bench round {r + 1}/{rounds}", capture=True, env=env)
        lines = [line for line in out.splitlines() if line.startswith('{"bench":"trie"')]
        if not lines:
            raise BenchError(f"cargo bench --bench trie printed no JSON line; stdout: {out[-500:]!r}")
        res = json.loads(lines[-1])
        if not isinstance(res.get("matches_per_s"), (int, float)):
            raise BenchError(f"trie bench: no matches_per_s in {res}")
        runs.append(res)
        log(f"trie round {r + 1}/{rounds}: {res['matches_per_s']:,.0f} matches/s")
    out = summarize(runs, ["matches_per_s"])
    for k in ("filters", "topics", "topics_with_a_match", "filters_per_topic"):
        out[k] = runs[-1].get(k)
    out["target"] = T_TRIE
    out["met"] = out["matches_per_s"] >= T_TRIE
    return out


def section_floor(run, cfg, rounds):
    progs = [("floor-block", [FLOOR_EXE, "--wait", "block"]),
             ("floor-epoll", [FLOOR_EXE, "--wait", "epoll"]), ("mqttclient", [BENCH_EXE])]
    if os.path.exists(MOSQ_LATENCY):
        progs.append(("libmosquitto", [MOSQ_LATENCY]))
    n = cfg["lat_count"]
    runs = {(q, name): [] for q in (0, 1) for name, _ in progs}
    for r in range(rounds):
        for qos in (0, 1):
            for name, cmd in progs:
                run.broker.check_alive()
                what = f"{name} latency QoS {qos}"
                res = measure([*cmd, "--port", run.broker.port, "--mode", "latency", "--qos", qos,
                               "--count", n, "--size", SIZE, "--inflight", INFLIGHT],
                              run_timeout(n, SIZE), what)
                if res.get("lib") != name or res.get("count") != n:
                    raise BenchError(f"{what}: unexpected output {res}")
                res["cpu_us_per_msg"] = res["cpu_s"] / n * 1e6
                runs[(qos, name)].append(res)
                log(f"floor round {r + 1}/{rounds}: {what}: {res['cpu_us_per_msg']:.1f} us CPU per "
                    f"round trip, p50 {res['p50_us']:.0f} us")
    rows = []
    for qos in (0, 1):
        row = {"qos": qos, "count": n, "size": SIZE}
        for name, _ in progs:
            row[name] = summarize(runs[(qos, name)], ["cpu_us_per_msg", "p50_us", "p99_us"])
        if "libmosquitto" in row:
            theirs = row["libmosquitto"]["cpu_us_per_msg"]
            row["ratios"] = {name: row[name]["cpu_us_per_msg"] / theirs for name, _ in progs[:3]}
            row["met"] = row["ratios"]["mqttclient"] <= T_CPU_VS_MOSQ
        rows.append(row)
    return {"rows": rows}


# The fleet section's programs: (name in the report and the JSON line, program, further arguments).
# Ours on a pool of 2 threads, as the fleet table in BENCHMARKS.md was measured.
FLEET_PROGS = [("mqttclient", BENCH_EXE, ("--threads", "2")), ("libmosquitto", FLEET_MOSQ, ()),
               ("paho-c", FLEET_PAHO, ())]
FLEET_KEYS = ["clients", "connected", "connect_s", "threads_peak", "rss_kb", "rss_kb_per_client",
              "expected", "delivered", "p99_ms"]
FLEET_INTERVAL_MS = 1000
FLEET_QOS = 1


def machine_limits():
    """What bounds a fleet here: descriptors, threads, memory."""
    def read(path, prefix=""):
        """The first word of `path` after `prefix`, on the first line that starts with it."""
        try:
            with open(path) as f:
                return next(line[len(prefix):].split()[0] for line in f if line.startswith(prefix))
        except (OSError, StopIteration, IndexError):
            return "?"
    return {"nofile_hard": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
            "nproc": resource.getrlimit(resource.RLIMIT_NPROC)[0],
            "threads_max": read("/proc/sys/kernel/threads-max"),
            "mem_available_kb": read("/proc/meminfo", "MemAvailable:")}


def fleet_run(broker, name, exe, extra, clients, hold_s):
    """One run of a fleet program: its JSON line, plus "status" and the last lines of its
    standard error ("why": it says there why clients did not connect or messages did not arrive).
    A run that prints no JSON line is {"error": ...}."""
    broker.check_alive()
    cmd = [str(c) for c in [exe, "--port", broker.port, "--mode", "clients", "--qos", FLEET_QOS,
                            "--clients", clients, "--interval-ms", FLEET_INTERVAL_MS, "--hold-s", hold_s,
                            *extra]]
    # Connecting, the hold, the deliveries and teardown, with room for the 30 s a stalled wait
    # takes to give up (fleet.h) at each of its steps.
    timeout = 180 + hold_s + clients * 0.02
    log(f"fleet: {fmt_cmd(cmd)}")
    broker_cpu = broker.cpu_s()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                           preexec_fn=_child_setup)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    broker_cpu = broker.cpu_s() - broker_cpu
    why = [line for line in p.stderr.strip().splitlines() if line][-3:]
    lines = [line for line in p.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"error": f"exit status {p.returncode}, no JSON line; stderr: {' / '.join(why) or '(empty)'}"}
    try:
        res = json.loads(lines[-1])
    except json.JSONDecodeError as e:
        return {"error": f"bad JSON line {lines[-1]!r}: {e}"}
    missing = [k for k in FLEET_KEYS if not isinstance(res.get(k), (int, float))]
    if res.get("lib") != name or missing or res["clients"] != clients:
        return {"error": f"unexpected output {res}"}
    res.update(status=p.returncode, why=why, broker_cpu_s=broker_cpu)
    return res


def section_fleet(cfg, sizes):
    progs = [(name, exe, extra) for name, exe, extra in FLEET_PROGS if os.path.exists(exe)]
    hold_s = cfg["fleet_hold_s"]
    broker = Broker(fleet=True)
    broker.start()
    rows, stopped = [], {}
    try:
        for clients in sizes:
            for name, exe, extra in progs:
                if name in stopped:
                    rows.append({"clients": clients, "lib": name, "skipped": stopped[name]})
                    continue
                res = fleet_run(broker, name, exe, extra, clients, hold_s)
                res.update(clients=clients, lib=name)
                rows.append(res)
                if "error" in res:
                    log(f"fleet {clients} {name}: failed: {res['error']}")
                    stopped[name] = f"failed at {clients:,}"
                    continue
                log(f"fleet {clients} {name}: {res['connected']} connected in {res['connect_s']:.1f} s, "
                    f"{res['threads_peak']} threads, {res['rss_kb_per_client']:.1f} KiB/client, "
                    f"{res['delivered']}/{res['expected']} delivered, p99 {res['p99_ms']} ms, "
                    f"broker CPU {res['broker_cpu_s']:.1f} s")
                if res["connected"] < clients:
                    stopped[name] = f"connected {res['connected']:,} of {clients:,}"
    finally:
        broker.stop()
    ours_failed = [f"{r['clients']:,} clients: {r.get('error') or ' / '.join(r['why']) or 'exit status 1'}"
                   for r in rows if r["lib"] == "mqttclient" and ("error" in r or r.get("status"))]
    return {"rows": rows, "ours_failed": ours_failed, "hold_s": hold_s, "interval_ms": FLEET_INTERVAL_MS,
            "qos": FLEET_QOS,
            "limits": machine_limits(), "broker_config": broker.conf_text,
            "not_built": [name for name, exe, _ in FLEET_PROGS if not os.path.exists(exe)]}


# The store section's runs: (name, what the report calls it, program, whether it gets a fresh
# --store DIR, further arguments). Paho C's file persistence does not fsync: it is the durability
# of our sync none (a killed process loses nothing, a power loss may).
STORE_CONFIGS = [
    ("ours-memory", "mqttclient, in memory (default)", BENCH_EXE, False, ()),
    ("ours-none", "mqttclient, store, sync none", BENCH_EXE, True, ("--store-sync", "none")),
    ("ours-batch", "mqttclient, store, sync batch (default)", BENCH_EXE, True,
     ("--store-sync", "batch")),
    ("ours-every", "mqttclient, store, sync every", BENCH_EXE, True, ("--store-sync", "every")),
    ("paho-memory", "Paho C, MQTTCLIENT_PERSISTENCE_NONE", PAHO_STORE, False, ()),
    ("paho-file", "Paho C, MQTTCLIENT_PERSISTENCE_DEFAULT (files, no fsync)", PAHO_STORE, True, ()),
]
# The store section's ratios of msgs/s: (name, numerator, denominator, target, what meets it).
STORE_RATIOS = [
    ("ours-batch / ours-memory", "ours-batch", "ours-memory", T_STORE_VS_MEMORY, ">="),
    ("ours-batch / paho-file", "ours-batch", "paho-file", T_STORE_VS_PAHO, ">"),
]


def mount_of(path):
    """The mount point, file system type and device that hold `path` (from /proc/mounts)."""
    path, best = os.path.realpath(path), None
    try:
        with open("/proc/mounts") as f:
            for line in f:
                dev, mnt, fstype = line.split()[:3]
                inside = path == mnt or path.startswith(mnt.rstrip("/") + "/")
                if inside and (best is None or len(mnt) > len(best[0])):
                    best = (mnt, fstype, dev)
    except (OSError, ValueError):
        return None
    return f"{best[0]} ({best[1]} on {best[2]})" if best else None


def section_store(run, cfg, rounds):
    n = cfg["store_count"]
    configs = [c for c in STORE_CONFIGS if c[2] != PAHO_STORE or os.path.exists(PAHO_STORE)]
    # A store with sync every, or Paho's files, may run at a few hundred messages a second.
    timeout = 60 + n * 4e-3
    runs = {(q, c[0]): [] for q in (1, 2) for c in configs}
    errors = {}
    for r in range(rounds):
        for qos in (1, 2):
            for name, _, exe, store, extra in configs:
                with tempfile.TemporaryDirectory(prefix="mqttc-store-") as d:
                    args = (("--store", d) if store else ()) + extra
                    try:
                        res = run.bench("pub", qos, n, exe=exe, extra=args, timeout=timeout)
                    except BenchError as e:
                        if exe != PAHO_STORE:
                            raise
                        log(f"warning: a peer's run failed (its ratios are n/a): {e}")
                        errors[(qos, name)] = " ".join(str(e).split())
                        continue
                runs[(qos, name)].append(res)
                log(f"store round {r + 1}/{rounds}: QoS {qos} {name}: {res['msgs_per_s']:,.0f} msgs/s, "
                    f"{res['cpu_us_per_msg']:.1f} us CPU/msg")
    rows = []
    for qos in (1, 2):
        row = {"qos": qos, "count": n, "size": SIZE, "inflight": INFLIGHT, "configs": {}, "ratios": []}
        for name, *_ in configs:
            rs = runs[(qos, name)]
            if (qos, name) in errors:
                row["configs"][name] = {"error": errors[(qos, name)], "rounds": rs}
            else:
                row["configs"][name] = summarize(rs, ["msgs_per_s", "cpu_us_per_msg", "secs"])
                row["configs"][name]["spread_pct"] = spread(rs, "msgs_per_s")
        for label, top, bottom, target, sign in STORE_RATIOS:
            t, b = row["configs"].get(top), row["configs"].get(bottom)
            k = {"name": label, "target": target, "sign": sign}
            if not t or not b or "error" in t or "error" in b:
                k.update(ratio=None, met=None, note="n/a (a run failed)" if b else "n/a (no Paho C)")
            else:
                ratio = t["msgs_per_s"] / b["msgs_per_s"]
                # Each round's runs are neighbours in time: their ratios show how far noise moves it.
                per_round = [x["msgs_per_s"] / y["msgs_per_s"]
                             for x, y in zip(t["rounds"], b["rounds"])]
                k.update(ratio=ratio, round_min=min(per_round), round_max=max(per_round),
                         cpu_ratio=t["cpu_us_per_msg"] / b["cpu_us_per_msg"],
                         met=ratio >= target if sign == ">=" else ratio > target)
            row["ratios"].append(k)
        rows.append(row)
    return {"rows": rows, "store_dir_fs": mount_of(tempfile.gettempdir()),
            "names": {name: label for name, label, *_ in configs}}


def section_compare(path, cfg, rounds, quick):
    """Runs compare.py for the 64-byte modes and for the large payloads (pub, QoS 0 and 1);
    its own broker, its own interleaved rounds."""
    runs = [(["--modes", "pub,e2e,latency", "--qos", "0,1,2", "--size", SIZE,
              "--count", cfg["count"], "--lat-count", cfg["lat_count"]], cfg["count"], SIZE, 30)]
    for size, n in cfg["payload"]:
        runs.append((["--modes", "pub", "--qos", "0,1", "--size", size, "--count", n], n, size, 8))
    per_run = 60 if quick else 120  # compare.py's own limit for one program run
    rows = []
    with tempfile.TemporaryDirectory(prefix="mqttc-compare-") as tmp:
        for i, (args, n, size, nprog) in enumerate(runs):
            out = os.path.join(tmp, f"compare{i}.json")
            cmd = [sys.executable, path, "--project", BENCH_EXE, "--rounds", rounds, "--json", out,
                   "--inflight", INFLIGHT, "--timeout", per_run, *args]
            # nprog program runs per round; each is bounded by compare.py's --timeout.
            limit = 300 + rounds * nprog * (per_run + 10)
            run_tool(cmd, limit, f"compare.py (size {size})")
            try:
                with open(out) as f:
                    rows += json.load(f)
            except (OSError, json.JSONDecodeError) as e:
                raise BenchError(f"compare.py wrote no readable JSON to {out}: {e}") from e
    checks, errors, peer_errors = [], [], []
    for row in rows:
        for lib in ("project", "libmosquitto", "paho", "raw"):
            if isinstance(row.get(lib), dict) and "error" in row[lib]:
                e = f"{lib} {row['mode']} QoS {row['qos']} size {row['size']}: {row[lib]['error']}"
                (errors if lib == "project" else peer_errors).append(" ".join(e.split()))
        checks += compare_checks(row)
    for e in peer_errors:
        log(f"warning: a peer's run failed (its targets are n/a): {e}")
    return {"path": os.path.abspath(path), "rows": rows, "checks": checks, "errors": errors,
            "peer_errors": peer_errors}


def compare_checks(row):
    """The targets that apply to one compare.py row: (metric, ours, peer name, peer value,
    target ratio, higher_is_better, ratio, met)."""
    ours, mosq, raw = row.get("project"), row.get("libmosquitto"), row.get("raw")

    def ok(v):
        return isinstance(v, dict) and "error" not in v

    out = []

    def add(metric, peer_name, peer, target, higher):
        note, met = None, None
        if not ok(ours) or not ok(peer) or metric not in ours or metric not in peer:
            note = "n/a (a run failed)"
        elif metric == "cpu_us_per_msg":
            # compare.py's CPU times come from /usr/bin/time: user and system seconds, each cut to
            # 10 ms steps, so a total lies in [printed, printed + 20 ms). Met or missed only when
            # every value in those ranges agrees.
            o, q = (v[metric] * row["count"] / 1e6 for v in (ours, peer))
            hi = (o + CPU_STEP_S) / q if q else float("inf")
            lo = o / (q + CPU_STEP_S)
            if hi <= target:
                met = True
            elif lo > target:
                met = False
            else:
                note = "n/a (CPU times too small for /usr/bin/time's 10 ms steps)"
        if note:
            out.append({"mode": row["mode"], "qos": row["qos"], "size": row["size"], "metric": metric,
                        "peer": peer_name, "target": target, "higher_is_better": higher,
                        "ratio": None, "met": None, "note": note})
            return
        ratio = ours[metric] / peer[metric] if peer[metric] else float("inf")
        if met is None:
            met = ratio >= target if higher else ratio <= target
        out.append({"mode": row["mode"], "qos": row["qos"], "size": row["size"], "metric": metric,
                    "ours": ours[metric], "peer": peer_name, "peer_value": peer[metric],
                    "target": target, "higher_is_better": higher, "ratio": ratio, "met": met})

    if row["mode"] == "pub":
        add("msgs_per_s", "raw", raw, T_PUB_VS_RAW if row["size"] <= SIZE else T_PAYLOAD_VS_RAW, True)
    elif row["mode"] == "e2e":
        add("msgs_per_s", "libmosquitto", mosq, T_E2E_VS_MOSQ, True)
    else:
        add("p50_us", "libmosquitto", mosq, T_LAT_VS_MOSQ, False)
        add("p99_us", "libmosquitto", mosq, T_LAT_VS_MOSQ, False)
    add("cpu_us_per_msg", "libmosquitto", mosq, T_CPU_VS_MOSQ, False)
    return out


# ---- the report --------------------------------------------------------------------------------

def machine_info(broker_exe):
    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kb = None
    try:
        with open("/proc/meminfo") as f:
            mem_kb = int(f.readline().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    mosq = quiet([broker_exe, "-h"]) if broker_exe else None
    commit = quiet(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    dirty = quiet(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"])
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu or platform.processor() or "unknown",
        "cores": os.cpu_count(),
        "memory_mb": mem_kb // 1024 if mem_kb else None,
        "kernel": f"{platform.system()} {platform.release()} {platform.machine()}",
        "mosquitto": (mosq or "unknown").replace("mosquitto version ", ""),
        "rustc": quiet(["rustc", "--version"]),
        "commit": (commit + (" + uncommitted changes" if dirty else "")) if commit else None,
        "loadavg_start": loadavg(),
    }


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return None


def num(v, digits=0):
    if v is None:
        return "-"
    if isinstance(v, float) and v == float("inf"):
        return "inf"
    return f"{v:,.{digits}f}"


def pct(row, settings):
    """The spread of the rounds ((max - min) / median), or "-" with one round."""
    return f"{row['spread_pct']:.0f}%" if settings["rounds"] > 1 else "-"


def verdict(met):
    return "met" if met else "**missed**"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def report(machine, settings, results, targets):
    out = ["# mqttclient benchmark report", ""]
    m = machine
    out += [f"- date: {m['date']}",
            f"- machine: {m['cpu']}, {m['cores']} cores"
            + (f", {m['memory_mb']:,} MB RAM" if m.get("memory_mb") else "") + f"; {m['kernel']}",
            f"- load average at start / end: {m.get('loadavg_start')} / {m.get('loadavg_end')}"
            + " (the suite needs an otherwise idle machine for meaningful numbers)",
            f"- mosquitto {m['mosquitto']} on 127.0.0.1, compare.py's configuration "
            "(max_inflight_messages 0, max_queued_messages 0, persistence false)",
            f"- mqttclient: commit {m.get('commit') or '?'}; {m.get('rustc') or 'rustc ?'}",
            f"- rounds: {settings['rounds']} (medians; rounds interleaved within a section)"
            + ("; **--quick: tiny counts, a smoke test, not a measurement**" if settings["quick"] else ""),
            "- CPU = user + system time of the benchmark process, per message; peak RSS = its "
            "ru_maxrss" + (" (by /usr/bin/time)" if settings.get("gnu_time") else
                           " (by wait4 from Python: **at least Python's own RSS**, no /usr/bin/time)"),
            ""]

    if "modes" in results:
        out += ["## modes", "", f"{SIZE}-byte payloads, inflight {INFLIGHT}; targets relative to the "
                "peers are in the compare section.", ""]
        rows = []
        for r in results["modes"]["rows"]:
            lat = r["mode"] == "latency"
            rows.append([r["mode"], r["qos"], num(r["count"]),
                         "-" if lat else num(r["msgs_per_s"]),
                         num(r["p50_us"], 1) if lat else "-", num(r["p99_us"], 1) if lat else "-",
                         num(r["max_us"], 1) if lat else "-",
                         num(r["cpu_us_per_msg"], 2), num(r["rss_peak_kb"]), pct(r, settings)])
        out += [table(["mode", "QoS", "count", "msgs/s", "p50 us", "p99 us", "max us", "CPU us/msg",
                       "peak RSS KB", "spread"], rows), ""]

    if "scale" in results:
        out += ["## scale", "", f"pub, {SIZE}-byte payloads: time and CPU per message at the large "
                f"count over the small count; target <= {T_SCALE:.2f} for both.", ""]
        rows = []
        for r in results["scale"]["rows"]:
            s, lg = r["small"], r["large"]
            rows.append([r["qos"], f"{num(r['small_count'])} / {num(r['large_count'])}",
                         f"{s['us_per_msg']:.3f} / {lg['us_per_msg']:.3f}", f"{r['time_ratio']:.3f}",
                         f"{s['cpu_us_per_msg']:.3f} / {lg['cpu_us_per_msg']:.3f}", f"{r['cpu_ratio']:.3f}",
                         f"{num(s['rss_peak_kb'])} / {num(lg['rss_peak_kb'])}",
                         f"<= {T_SCALE:.2f}", verdict(r["met"])])
        out += [table(["QoS", "count small / large", "us/msg", "time ratio", "CPU us/msg",
                       "CPU ratio", "peak RSS KB", "target", "result"], rows), ""]

    if "payload" in results:
        out += ["## payload", "", f"pub, inflight {INFLIGHT}; the target (>= {T_PAYLOAD_VS_RAW:.2f}x the "
                "raw-socket client) is checked in the compare section. MB = 10^6 bytes.", ""]
        rows = [[r["qos"], num(r["size"]), num(r["count"]), num(r["msgs_per_s"]), num(r["mb_per_s"]),
                 num(r["cpu_us_per_msg"], 2), num(r["rss_peak_kb"]), pct(r, settings)]
                for r in results["payload"]["rows"]]
        out += [table(["QoS", "size", "count", "msgs/s", "MB/s", "CPU us/msg", "peak RSS KB", "spread"],
                      rows), ""]

    if "idle" in results:
        idle = results["idle"]
        out += ["## idle", "", "VmRSS of a process with one connected client after 2 s idle "
                "(includes the pages of shared libraries it touched).", ""]
        rows = []
        for name in ("mqttclient", "libmosquitto"):
            if name not in idle:
                rows.append([name, "not built (no libmosquitto-dev)", "", ""])
                continue
            target = result = ""
            if name == "mqttclient" and "met" in idle:
                target = "<= libmosquitto"
                result = f"{verdict(idle['met'])} ({idle['ratio_vs_libmosquitto']:.2f}x)"
            rows.append([name, num(idle[name]["rss_kb"]), target, result])
        out += [table(["library", "RSS KB", "target", "result"], rows), ""]

    if "trie" in results:
        t = results["trie"]
        out += ["## trie", "", "`cargo bench --bench trie`: topics matched per second on one core.", "",
                table(["filters", "topics", "topics with a match", "filters/topic", "matches/s", "target",
                       "result"],
                      [[num(t["filters"]), num(t["topics"]), num(t["topics_with_a_match"]),
                        t["filters_per_topic"], num(t["matches_per_s"]), f">= {T_TRIE:,}", verdict(t["met"])]]),
                ""]

    if "floor" in results:
        out += ["## floor", "", f"Latency mode ({SIZE}-byte payloads): CPU per round trip (user + "
                "system, wait4), medians; in brackets, the ratio to libmosquitto. The floor is "
                "benches/latency_floor.c, a raw-socket client that spends the least any client can "
                "with the same packets: blocking recv (the fewest system calls), and epoll (the "
                "shape of an event loop such as libmosquitto's or ours).", ""]
        rows = []
        for r in results["floor"]["rows"]:
            ratios = r.get("ratios", {})
            cells = [f"{r[name]['cpu_us_per_msg']:.1f}"
                     + (f" ({ratios[name]:.2f}x)" if name in ratios else "")
                     for name in ("floor-block", "floor-epoll", "mqttclient")]
            mosq = r.get("libmosquitto")
            rows.append([r["qos"], *cells, f"{mosq['cpu_us_per_msg']:.1f}" if mosq else "not built",
                         f"<= {T_CPU_VS_MOSQ:.2f}x libmosquitto",
                         verdict(r["met"]) if "met" in r else "n/a (no libmosquitto)"])
        out += [table(["QoS", "floor, blocking recv", "floor, epoll", "mqttclient", "libmosquitto",
                       "target", "result"], rows), ""]

    if "store" in results:
        st = results["store"]
        out += ["## store", "", f"pub, {SIZE}-byte payloads, inflight {INFLIGHT} for every client "
                "(Paho C: maxInflight and its own window, see benches/paho_store.c); a fresh store "
                f"directory per run under {st['store_dir_fs'] or tempfile.gettempdir()}; medians; "
                "CPU = user + system time (wait4) per message. Paho's file persistence does not "
                "fsync.", ""]
        rows = []
        for name, label in st["names"].items():
            cells = []
            for row in st["rows"]:
                v = row["configs"][name]
                if "error" in v:
                    cells += ["failed", "-", "-"]
                else:
                    cells += [num(v["msgs_per_s"]), num(v["cpu_us_per_msg"], 1), pct(v, settings)]
            rows.append([label, *cells])
        count = num(st["rows"][0]["count"])
        out += [table(["client", f"QoS 1 msgs/s ({count})", "CPU us/msg", "spread",
                       f"QoS 2 msgs/s ({count})", "CPU us/msg", "spread"], rows), ""]
        rows = []
        for row in st["rows"]:
            for k in row["ratios"]:
                if k["ratio"] is None:
                    rows.append([row["qos"], k["name"], "-", "-", "-", f"{k['sign']} {k['target']:.2f}",
                                 k["note"]])
                    continue
                per_round = (f"{k['round_min']:.2f}-{k['round_max']:.2f}x" if settings["rounds"] > 1
                             else "-")
                rows.append([row["qos"], k["name"], f"{k['ratio']:.2f}x", per_round,
                             f"{k['cpu_ratio']:.2f}x", f"{k['sign']} {k['target']:.2f}",
                             verdict(k["met"])])
        out += [table(["QoS", "msgs/s ratio", "of the medians", "in each round", "CPU/msg ratio",
                       "target", "result"], rows), ""]
        failed = [f"QoS {row['qos']} {name}: {v['error']}" for row in st["rows"]
                  for name, v in row["configs"].items() if "error" in v]
        if failed:
            out += ["Failed runs of the peer (the ratios against it are n/a):", ""]
            out += [f"- {e}" for e in failed] + [""]

    if "fleet" in results:
        fl = results["fleet"]
        lim = fl["limits"]
        out += ["## fleet", "", f"N clients in one process, each subscribed at QoS {fl['qos']} to its own "
                f"topic and publishing to its neighbour's every {fl['interval_ms']} ms for {fl['hold_s']} s "
                "(c_examples/fleet.h, the same measurement for the three programs); one run each, "
                "against one mosquitto with max_connections -1 and its descriptor limit raised to "
                "the hard maximum. "
                "mqttclient on one mqttc_pool of 2 threads; libmosquitto one mosquitto_loop_start "
                "thread a client; Paho C's MQTTAsync shares its threads. RSS per client: peak VmRSS "
                "over that before the first client, divided by the clients. Broker CPU: what mosquitto "
                "used over the whole run (connect, hold, disconnect). Limits here: "
                f"descriptors {lim['nofile_hard']:,} (hard), threads-max {lim['threads_max']}, "
                f"RLIMIT_NPROC {lim['nproc']}, MemAvailable {lim['mem_available_kb']} kB.", ""]
        rows = []
        for r in fl["rows"]:
            head = [num(r["clients"]), r["lib"]]
            if "skipped" in r:
                rows.append(head + [f"not run ({r['skipped']})"] + [""] * 6 + [""])
            elif "error" in r:
                rows.append(head + ["failed"] + [""] * 6 + [r["error"]])
            else:
                # Short of all, connect_s is when the wait gave up (fleet.h's 30 s without progress).
                connect = f"{r['connect_s']:.2f} s" + ("" if r["connected"] == r["clients"] else " (gave up)")
                rows.append(head + [num(r["connected"]), connect, num(r["threads_peak"]),
                                    f"{r['rss_kb_per_client']:.1f} KiB",
                                    f"{num(r['delivered'])} of {num(r['expected'])}",
                                    f"{r['p99_ms']:.0f} ms" if r["delivered"] else "-",
                                    f"{r['broker_cpu_s']:.1f} s",
                                    " / ".join(r["why"]) if r["status"] else ""])
        out += [table(["clients", "library", "connected", "connect all", "threads (peak)", "RSS per client",
                       "delivered", "p99 publish to callback", "broker CPU", "note"], rows), ""]
        if fl["not_built"]:
            out += [f"Not built (header missing): {', '.join(fl['not_built'])}.", ""]

    if "compare" in results:
        c = results["compare"]
        out += ["## compare", "", f"`{c['path']}` (its own broker and rounds): medians per library; "
                "ratio = mqttclient / peer.", ""]
        names = {"msgs_per_s": "msgs/s", "cpu_us_per_msg": "CPU us/msg", "p50_us": "p50 us",
                 "p99_us": "p99 us", "rss_kb": "peak RSS KB"}
        checks = {(k["mode"], k["qos"], k["size"], k["metric"]): k for k in c["checks"]}
        rows = []
        for row in c["rows"]:
            metrics = (["p50_us", "p99_us"] if row["mode"] == "latency" else ["msgs_per_s"])
            for metric in metrics + ["cpu_us_per_msg", "rss_kb"]:
                cells = []
                for lib in ("project", "libmosquitto", "paho", "raw"):
                    v = row.get(lib)
                    if v is None:
                        cells.append("-")
                    elif "error" in v:
                        cells.append("ERR")
                    else:
                        cells.append(num(v.get(metric), 2 if metric == "cpu_us_per_msg" else 0))
                k = checks.get((row["mode"], row["qos"], row["size"], metric))
                if k:
                    sign = ">=" if k["higher_is_better"] else "<="
                    target = f"{sign} {k['target']:.2f}x {k['peer']}"
                    ratio = num(k["ratio"], 2) if k["ratio"] is not None else "-"
                    result = verdict(k["met"]) if k["ratio"] is not None else k["note"]
                else:
                    target = ratio = result = ""
                rows.append([row["mode"], row["qos"], num(row["size"]), num(row["count"]), names[metric],
                             *cells, target, ratio, result])
        out += [table(["mode", "QoS", "size", "count", "metric", "mqttclient", "libmosquitto", "paho", "raw",
                       "target", "ratio", "result"], rows), ""]
        failed = c["errors"] + c.get("peer_errors", [])
        if failed:
            out += ["Failed runs (mqttclient's fail the suite; a peer's make its targets n/a):", ""]
            out += [f"- {e}" for e in failed] + [""]

    if targets:
        out += ["## targets", "", table(["target", "value", "result"], targets), ""]
    if settings.get("error"):
        out += ["## error", "", "```", settings["error"], "```", ""]
    return "\n".join(out)


def target_summary(results):
    rows = []
    for r in results.get("scale", {}).get("rows", []):
        rows.append([f"scale QoS {r['qos']}: {num(r['large_count'])}/{num(r['small_count'])} per-message "
                     f"time and CPU <= {T_SCALE:.2f}", f"{r['time_ratio']:.3f}, {r['cpu_ratio']:.3f}",
                     verdict(r["met"])])
    idle = results.get("idle", {})
    if "met" in idle:
        rows.append(["idle RSS <= libmosquitto", f"{idle['ratio_vs_libmosquitto']:.2f}x", verdict(idle["met"])])
    if "trie" in results:
        t = results["trie"]
        rows.append([f"trie >= {T_TRIE:,} matches/s", num(t["matches_per_s"]), verdict(t["met"])])
    for r in results.get("floor", {}).get("rows", []):
        if "met" in r:
            ratios = r["ratios"]
            rows.append([f"latency QoS {r['qos']}: CPU per round trip <= {T_CPU_VS_MOSQ:.2f}x libmosquitto "
                         "(wait4; floor section)",
                         f"{ratios['mqttclient']:.2f}x (raw-socket floor {ratios['floor-block']:.2f}x "
                         f"blocking, {ratios['floor-epoll']:.2f}x epoll)", verdict(r["met"])])
    for row in results.get("store", {}).get("rows", []):
        for k in row["ratios"]:
            rows.append([f"store QoS {row['qos']}: msgs/s {k['name']} {k['sign']} {k['target']:.2f}",
                         f"{k['ratio']:.2f}x" if k["ratio"] is not None else "-",
                         verdict(k["met"]) if k["ratio"] is not None else k["note"]])
    for k in results.get("compare", {}).get("checks", []):
        sign = ">=" if k["higher_is_better"] else "<="
        name = {"msgs_per_s": "msgs/s", "cpu_us_per_msg": "CPU/msg", "p50_us": "p50",
                "p99_us": "p99"}[k["metric"]]
        rows.append([f"{k['mode']} QoS {k['qos']} size {k['size']}: {name} {sign} {k['target']:.2f}x {k['peer']}",
                     f"{num(k['ratio'], 2)}x" if k["ratio"] is not None else "-",
                     verdict(k["met"]) if k["ratio"] is not None else k["note"]])
    return rows


# ---- main --------------------------------------------------------------------------------------

def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="scripts/bench.py", description="mqttclient's benchmark suite: builds, starts its own\n"
        "mosquitto, runs the sections and prints a Markdown report (progress on stderr).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="sections: " + ", ".join(SECTIONS) + " (see the top of scripts/bench.py)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds per run, medians reported "
                    "(default 3; 1 with --quick)")
    ap.add_argument("--quick", action="store_true", help="tiny counts and 1 round: a smoke test "
                    "(no compare section unless --compare or --only asks for it)")
    ap.add_argument("--json", metavar="OUT", help="write every raw number to OUT")
    ap.add_argument("--compare", metavar="PATH", help="shared/bench/compare.py (default: "
                    "../shared/bench/compare.py beside the repository, when it exists)")
    ap.add_argument("--only", metavar="SECTIONS", help="comma-separated subset of: " + ",".join(SECTIONS))
    ap.add_argument("--fleet-sizes", metavar="N,N,...", help="the fleet section's numbers of clients "
                    "(default 1000,5000,10000; 20,100 with --quick)")
    a = ap.parse_args(argv)
    try:
        a.fleet_sizes = [int(n) for n in a.fleet_sizes.split(",")] if a.fleet_sizes else None
    except ValueError:
        ap.error(f"--fleet-sizes {a.fleet_sizes}: expected numbers separated by commas")
    if a.fleet_sizes is not None and not all(n >= 1 for n in a.fleet_sizes):
        ap.error("--fleet-sizes: each at least 1")
    if a.rounds is None:
        a.rounds = 1 if a.quick else 3
    if a.rounds < 1:
        ap.error("--rounds must be at least 1")
    compare_path = a.compare or (DEFAULT_COMPARE if os.path.exists(DEFAULT_COMPARE) else None)
    if a.only:
        sections = [s.strip() for s in a.only.split(",") if s.strip()]
        unknown = [s for s in sections if s not in SECTIONS]
        if unknown or not sections:
            ap.error(f"--only: unknown section(s) {', '.join(unknown) or '(none given)'}; "
                     f"choose from {', '.join(SECTIONS)}")
        if "compare" in sections and not compare_path:
            ap.error(f"--only compare: compare.py not found at {DEFAULT_COMPARE}; pass --compare PATH")
    else:
        sections = [s for s in SECTIONS if s not in OPT_IN]
        if compare_path and (a.compare or not a.quick):
            sections.append("compare")
    if "compare" in sections and not os.path.isfile(compare_path):
        ap.error(f"--compare: no such file: {compare_path}")
    a.sections = [s for s in SECTIONS if s in sections]
    a.compare_path = compare_path
    return a


def _on_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    cfg = QUICK if a.quick else FULL
    settings = {"rounds": a.rounds, "quick": a.quick, "sections": a.sections, "counts": cfg,
                "inflight": INFLIGHT, "size": SIZE, "error": None}
    results, broker, machine, status = {}, None, {}, 0
    settings["gnu_time"] = HAVE_GNU_TIME
    t0 = time.monotonic()
    try:
        have_mosq_h = ensure_packages(a.sections)
        settings["gnu_time"] = HAVE_GNU_TIME
        machine = machine_info(mosquitto_exe())
        build(a.sections, have_mosq_h, a.compare_path)
        needs_broker = {"modes", "scale", "payload", "idle", "floor", "store"} & set(a.sections)
        if needs_broker:
            broker = Broker()
            broker.start()
            machine["broker_config"] = broker.conf_text
        run = Runner(broker)
        for name in a.sections:
            log(f"section {name}")
            if name == "modes":
                results[name] = section_modes(run, cfg, a.rounds)
            elif name == "scale":
                results[name] = section_scale(run, cfg, a.rounds)
            elif name == "payload":
                results[name] = section_payload(run, cfg, a.rounds)
            elif name == "idle":
                results[name] = section_idle(broker, a.rounds)
            elif name == "trie":
                results[name] = section_trie(cfg, a.rounds)
            elif name == "floor":
                results[name] = section_floor(run, cfg, a.rounds)
            elif name == "store":
                results[name] = section_store(run, cfg, a.rounds)
            elif name == "fleet":
                results[name] = section_fleet(cfg, a.fleet_sizes or cfg["fleet_sizes"])
                if results[name]["ours_failed"]:
                    raise BenchError("fleet: mqttc_bench did not connect every client or lost messages:\n  "
                                     + "\n  ".join(results[name]["ours_failed"]))
            elif name == "compare":
                results[name] = section_compare(a.compare_path, cfg, a.rounds, a.quick)
        errors = results.get("compare", {}).get("errors")
        if errors:
            raise BenchError(f"compare.py: {len(errors)} run(s) of mqttc_bench failed:\n  "
                             + "\n  ".join(errors))
    except BenchError as e:
        settings["error"] = str(e)
        status = 1
    except KeyboardInterrupt:
        settings["error"] = "interrupted"
        status = 130
    finally:
        if broker:
            broker.stop()
    machine["loadavg_end"] = loadavg()
    settings["elapsed_s"] = round(time.monotonic() - t0, 1)
    if machine.get("date"):
        print(report(machine, settings, results, target_summary(results)), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"machine": machine, "settings": settings, "sections": results}, f, indent=1)
            f.write("\n")
    if settings["error"]:
        print(f"bench.py: error: {settings['error']}", file=sys.stderr)
    else:
        log(f"done in {settings['elapsed_s']} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
