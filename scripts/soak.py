#!/usr/bin/env python3
"""Soak test (not run by CI): minutes of mixed traffic with forced reconnects, memory watched.

Builds the library (`cargo build --release --lib`) and tests/c/soak.c against it, starts its own
mosquitto on a free loopback port (persistent, so a restart keeps sessions and queued messages;
no limit on queued or in-flight messages, so the broker drops nothing by itself) behind a small TCP
proxy of its own, and runs the program through the proxy for --minutes. tests/c/soak.c has the
traffic: publishers at QoS 0/1/2 with payloads from 16 bytes to 64 KiB, persistent subscribers,
a client subscribing and unsubscribing at random, short-lived clients created and freed every
second. Meanwhile this script
  - drops every proxied connection every --drop-every seconds (alternately closed and reset), and
  - restarts the broker (SIGTERM, which saves its state, then start) every --restart-every seconds,
so the clients reconnect and resume their sessions many times; and samples the program's resident
memory (VmRSS), threads and descriptors every --sample-every seconds. The program itself reports
its live heap (what malloc has handed out and not had back, from mallinfo2) every 2 s: RSS also
holds what the allocator keeps after a free, the live heap shows what the program really holds.

It fails (exit 1) when
  - the program reports a lost message (a QoS 1 or 2 publish whose token completed OK that a
    subscriber never received), a QoS 2 message received twice, or any other failure. One
    exception, counted and printed apart: a QoS 2 message received again with DUP set within 10 s
    after a broker restart. mosquitto 2.0.11, restored from its database, re-sends as new some
    QoS 2 messages whose PUBREL it had already sent before the restart (MQTT-4.3.3 forbids it);
    mosquitto_sub, which delivers QoS 2 only at PUBREL, receives them twice as well. The script
    tells the program of each restart with SIGUSR1;
  - memory grew: the median of the last minute of traffic exceeds the median of the first minute
    by more than --tolerance-pct percent of it, or --tolerance-mib MiB, whichever is larger, for
    the RSS or for the live heap. (For runs shorter than 3 minutes, the first and last third stand
    for those minutes.)
It prints both series' summaries either way. Exit 0 passed, 1 failed, 2 bad usage or set-up.

  scripts/soak.py                       10 minutes
  scripts/soak.py --minutes 0.5         a quick look
  scripts/soak.py --lib-dir target/debug --no-build   against an existing debug build
"""

import argparse
import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFLAGS = ["-std=c11", "-O2", "-g", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Wextra", "-Werror"]


def log(msg):
    print(f"[soak] {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent():
    """In each child: SIGTERM when this script dies without cleaning up."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Broker:
    """mosquitto with persistence on a fixed port, restartable."""

    def __init__(self, workdir):
        self.exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.dir = workdir
        self.port = free_port()
        self.conf = os.path.join(workdir, "mosquitto.conf")
        self.log_path = os.path.join(workdir, "mosquitto.log")
        self.proc = None
        self.restarts = 0
        # mosquitto started as root drops to its own user before writing its database.
        os.chmod(workdir, 0o777)
        with open(self.conf, "w") as f:
            f.write(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                    f"persistence true\npersistence_location {workdir}/\n"
                    "max_inflight_messages 0\nmax_queued_messages 0\n"
                    "log_type error\nlog_type warning\n")

    def start(self, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path, "a") as err:
                self.proc = subprocess.Popen([self.exe, "-c", self.conf], stdout=err, stderr=err,
                                             stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                    return
                except OSError:
                    time.sleep(0.05)
            time.sleep(0.2)  # exited: the port may still be held by the previous one
        raise RuntimeError(f"mosquitto did not start on port {self.port}; see {self.log_path}")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: mosquitto saves its database, then exits
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self):
        self.stop()
        self.start()
        self.restarts += 1


class Proxy:
    """Forwards loopback TCP connections to the broker; drop() cuts every one of them."""

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.port = None
        self.links = set()
        self.drops = 0
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        if not ready.wait(10):
            raise RuntimeError("the proxy did not start")

    def _run(self, ready):
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    async def _accept(self, reader, writer):
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.upstream), 5)
        except (OSError, asyncio.TimeoutError):
            writer.close()  # broker down (restarting): the client sees its connect fail
            return
        link = (writer, up_writer)
        self.links.add(link)
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self.links.discard(link)
            for w in link:
                w.close()

    @staticmethod
    async def _pipe(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def drop(self):
        """Cuts every link: on odd drops with a reset (abort), on even ones with a close."""
        self.drops += 1
        abort = self.drops % 2 == 1

        def cut():
            for link in list(self.links):
                for w in link:
                    if abort:
                        w.transport.abort()
                    else:
                        w.close()
        self.loop.call_soon_threadsafe(cut)

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def proc_sample(pid):
    """(VmRSS KiB, threads, descriptors) of a running process, or None once it is gone."""
    try:
        fields = {}
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields[key] = value.split()
        return int(fields["VmRSS"][0]), int(fields["Threads"][0]), len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, KeyError, IndexError, ValueError):
        return None


def build(lib_dir, no_build, out_dir):
    if not no_build:
        log("cargo build --release --lib")
        subprocess.run(["cargo", "build", "--release", "--lib"], cwd=ROOT, check=True, timeout=1800)
    if not os.path.exists(os.path.join(lib_dir, "libmqttclient.so")):
        raise RuntimeError(f"no libmqttclient.so in {lib_dir}")
    exe = os.path.join(out_dir, "soak")
    subprocess.run(["cc", *CFLAGS, "-I", os.path.join(ROOT, "include"),
                    os.path.join(ROOT, "tests", "c", "soak.c"), "-o", exe, "-L", lib_dir,
                    f"-Wl,-rpath,{lib_dir}", "-lmqttclient", "-lpthread"], check=True, timeout=120)
    return exe


def judge(name, series, seconds, args):
    """Prints the summary of a memory series [(t, KiB)]; True when its last-window median exceeds
    its first-window median by no more than the tolerance."""
    window = min(60.0, seconds / 3)
    first = [v for t, v in series if t <= window]
    last = [v for t, v in series if t >= seconds - window]
    if not first or not last:
        log(f"{name}: too few samples for a verdict")
        return False
    first_med, last_med = statistics.median(first), statistics.median(last)
    values = [v for _, v in series]
    limit = max(first_med * args.tolerance_pct / 100, args.tolerance_mib * 1024)
    growth = last_med - first_med
    log(f"{name} over {len(series)} samples in {seconds:.0f} s of traffic: "
        f"first {window:.0f} s median {first_med / 1024:.2f} MiB, "
        f"last {window:.0f} s median {last_med / 1024:.2f} MiB "
        f"(growth {growth / 1024:+.2f} MiB, allowed {limit / 1024:.1f} MiB), "
        f"min {min(values) / 1024:.2f} MiB, max {max(values) / 1024:.2f} MiB")
    # A coarse picture of the series: one median a tenth of the run.
    tenth = seconds / 10
    medians = []
    for i in range(10):
        part = [v for t, v in series if i * tenth <= t < (i + 1) * tenth]
        medians.append(f"{statistics.median(part) / 1024:.2f}" if part else "-")
    log(f"{name} median (MiB) per tenth of the run: " + " ".join(medians))
    return growth <= limit


def summarize(samples, heap, seconds, args):
    """Prints the RSS, live heap, thread and descriptor summaries; True when memory stayed flat."""
    rss_ok = judge("RSS", [(s[0], s[1]) for s in samples], seconds, args)
    heap_ok = judge("live heap", heap, seconds, args)
    threads = [s[2] for s in samples]
    fds = [s[3] for s in samples]
    log(f"threads: first {threads[0]}, last {threads[-1]}, max {max(threads)}; "
        f"descriptors: first {fds[0]}, last {fds[-1]}, max {max(fds)}")
    return rss_ok and heap_ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10, help="traffic time (default 10)")
    ap.add_argument("--rate", type=int, default=200, help="messages/s per publisher (3 publishers)")
    ap.add_argument("--drop-every", type=float, default=15, help="seconds between connection drops")
    ap.add_argument("--restart-every", type=float, default=60, help="seconds between broker restarts")
    ap.add_argument("--sample-every", type=float, default=2, help="seconds between memory samples")
    ap.add_argument("--tolerance-pct", type=float, default=10, help="allowed growth (RSS, live heap), percent")
    ap.add_argument("--tolerance-mib", type=float, default=4, help="allowed growth (RSS, live heap), MiB")
    ap.add_argument("--lib-dir", default=os.path.join(ROOT, "target", "release"))
    ap.add_argument("--no-build", action="store_true", help="use the library in --lib-dir as it is")
    args = ap.parse_args()
    seconds = args.minutes * 60
    if seconds < 6:
        ap.error("--minutes must give at least 6 seconds of traffic")

    work = tempfile.mkdtemp(prefix="mqttc-soak-")
    broker = proxy = prog = None
    try:
        exe = build(os.path.abspath(args.lib_dir), args.no_build, work)
        broker = Broker(work)
        broker.start()
        proxy = Proxy(broker.port)
        log(f"mosquitto on {broker.port}, proxy on {proxy.port}; {seconds:.0f} s of traffic")
        prog = subprocess.Popen([exe, "127.0.0.1", str(proxy.port), str(int(seconds)), str(args.rate)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                preexec_fn=die_with_parent)
        started = threading.Event()
        heap = []  # (s since the traffic started, KiB) from the program's "heap:" lines

        def echo():
            for line in prog.stdout:
                words = line.split()
                if words[:1] == ["heap:"] and len(words) == 5:
                    heap.append((int(words[1]) / 1000, int(words[3])))
                    continue
                print(f"  {line.rstrip()}", flush=True)
                if line.startswith("started:"):
                    started.set()
        reader = threading.Thread(target=echo, daemon=True)
        reader.start()
        if not started.wait(120):
            raise RuntimeError("the soak program did not start its traffic within 120 s")

        t0 = time.monotonic()
        samples = []
        next_drop, next_restart = args.drop_every, args.restart_every
        while (t := time.monotonic() - t0) < seconds and prog.poll() is None:
            sample = proc_sample(prog.pid)
            if sample:
                samples.append((t, *sample))
            if t >= next_restart:
                # Tells the program first: mosquitto restored from its database re-sends some
                # QoS 2 messages it had already released, which the program then counts apart.
                prog.send_signal(signal.SIGUSR1)
                broker.restart()
                next_restart += args.restart_every
            elif t >= next_drop:
                proxy.drop()
            if t >= next_drop:
                next_drop += args.drop_every
            time.sleep(max(0.0, min(args.sample_every, t0 + t + args.sample_every - time.monotonic())))
        log(f"traffic time over: drops={proxy.drops} broker_restarts={broker.restarts}; waiting for the account")
        try:
            code = prog.wait(timeout=600)
        except subprocess.TimeoutExpired:
            prog.kill()
            code = prog.wait()
            log("the soak program did not finish within 10 minutes of the traffic's end")
        reader.join(10)
        memory_ok = summarize(samples, heap, seconds, args)
        passed = code == 0 and memory_ok
        if code != 0:
            log(f"the soak program failed (exit {code}): see its output above")
        if not memory_ok:
            log("memory grew beyond the tolerance")
        log("PASS" if passed else "FAIL")
        return 0 if passed else 1
    except (RuntimeError, subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        log(f"set-up failed: {e}")
        return 2
    finally:
        if prog is not None and prog.poll() is None:
            prog.kill()
            prog.wait()
        if proxy is not None:
            proxy.stop()
        if broker is not None:
            broker.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
