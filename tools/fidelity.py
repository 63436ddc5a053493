#!/usr/bin/env python3
"""Side-by-side fidelity check: ipcbench against well-known tools on the same machine.

Alternates, round after round, ipcbench and each reference tool at the same placement
and message size, then prints the medians and their ratios as a Markdown table:

  tcp  ping-pong 64 B   sockperf ping-pong (prints half the round trip: doubled here)
  tcp  throughput 64 KiB iperf3 with 64 KiB writes, and ipcbench-lat-reference tcp-bw
                       (lmbench bw_tcp-style: a bare write loop, a bare read loop)
  pipe ping-pong       perf bench sched pipe (same CPU only: it cannot pin two processes
                       apart), and ipcbench-lat-reference (lmbench lat_pipe-style)
  uds  ping-pong 64 B   ipcbench-lat-reference (lmbench lat_unix-style)
  tcp  ping-pong 64 B   ipcbench-lat-reference (lmbench lat_tcp-style)

With --zmq, instead: zmq-ipc and zmq-tcp against ipcbench-zmq-reference, which rebuilds
the method of libzmq's perf programs (local_lat/remote_lat print half the mean round
trip: doubled here and compared with rtt_mean_ns; local_thr/remote_thr count messages
per second from the first to the last message received), at 64 B and 64 KiB.

With --http, instead: http-tcp's ping-pong at 64 B against HTTP load tools driving the
same HTTP server (an ipcbench peer in its echo role, which returns each request's body)
with one connection, one request in flight, POST /echo with a 64-byte body and the
run's token: h2load --h1 (nghttp2) and ab -k (Apache's). Both print the mean time per
request, not percentiles: compared with rtt_mean_ns. Each reference run must end with
every request answered 2xx, or the step fails.

With --rate, instead: tcp's rate workload at 64 B against sockperf's latency-under-load
mode (`sockperf under-load --tcp --mps=R --reply-every=1`: it also sends on a schedule
without waiting for replies, and times each reply from its message's actual send,
printing half the round trip: doubled here), at a few offered rates, cross-CPU. sockperf
does not correct for coordinated omission, so its figures are set against the rate
cell's uncorrected p50 and p99 (unc_*).

Run through tools/fidelity.sh, which installs the tools and builds first.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "report"))
from ipcbench_report import ReportError  # noqa: E402  (after the path above)
from ipcbench_report.load import load_run  # noqa: E402


# Beyond the seconds it is asked to measure for, no step of a round takes more than a few
# seconds; one that runs this much longer has hung (a stopped process, a port taken by
# something else) and is killed.
STEP_TIMEOUT = 300


class StepFailed(Exception):
    """A tool failed, hung or printed no figure; main() prints it as one line."""


def run(cmd, merge_stderr=False, timeout=STEP_TIMEOUT):
    """The stdout of cmd; StepFailed when it fails or outlives `timeout` seconds (it is
    then killed)."""
    try:
        return subprocess.run(cmd, check=True, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
                              timeout=timeout).stdout
    except subprocess.TimeoutExpired:
        raise StepFailed(f"{' '.join(cmd)}: no result within {timeout:g} s, killed") from None
    except subprocess.CalledProcessError as e:
        said = (e.stderr or e.stdout or "").strip()
        # A tool asked for JSON (iperf3 --json) puts its error there.
        m = re.search(r'"error":\s*"([^"]*)"', said)
        last = m.group(1) if m else (said.splitlines() or [""])[-1]
        raise StepFailed(f"{' '.join(cmd)}: exit status {e.returncode}"
                         + (f": {last}" if last else "")) from None
    except OSError as e:
        raise StepFailed(f"{cmd[0]}: {e.strerror}") from None


def figure(pattern, out, what):
    """The first group of `pattern` in a tool's output; StepFailed when it is not there."""
    m = re.search(pattern, out)
    if not m:
        raise StepFailed(f"{what}: no figure in its output")
    return float(m.group(1))


def stop(server):
    """Ends a server started for one measurement, whatever state it is in."""
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def results(path):
    """Each cell of an ipcbench result file (read by the report package's loader) as
    {counter: median over its repetitions}; StepFailed with the loader's reason when
    the file is not an ipcbench result, or naming a cell that failed."""
    try:
        cells = load_run(Path(path)).cells
    except ReportError as e:
        raise StepFailed(str(e)) from None
    out = {}
    for cid, cell in cells.items():
        if not cell.ok:
            why = "; ".join(dict.fromkeys(cell.errors))
            raise StepFailed(f"ipcbench cell {cid} failed: {why}")
        out[cid] = {k: cell.median(k) for k in cell.counters()}
    return out


def ipcbench(build, args, seconds):
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        run([f"{build}/ipcbench", f"--benchmark_min_time={seconds}",
             f"--benchmark_out={f.name}", "--benchmark_out_format=json", *args],
            timeout=STEP_TIMEOUT + 10 * seconds)
        return results(f.name)


def sockperf_client(cpus, mode, size, seconds, extra=()):
    """Runs `sockperf <mode>` on cpus[0] against a sockperf server on cpus[1] (tcp,
    loopback) and returns its output."""
    port = str(free_port())
    srv = subprocess.Popen(["taskset", "-c", str(cpus[1]), "sockperf", "server", "--tcp",
                            "-i", "127.0.0.1", "-p", port],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        return run(["taskset", "-c", str(cpus[0]), "sockperf", mode, "--tcp",
                    "-i", "127.0.0.1", "-p", port, "-m", str(size), "-t", str(seconds),
                    *extra],
                   merge_stderr=True, timeout=STEP_TIMEOUT + seconds)
    finally:
        stop(srv)


def sockperf_rtt(cpus, size, seconds):
    out = sockperf_client(cpus, "ping-pong", size, seconds)
    half = figure(r"percentile 50\.000 =\s*([0-9.]+)", out, "sockperf")
    return 2 * half * 1000.0  # µs one way -> ns round trip


def iperf3_bps(cpus, length, seconds):
    port = str(free_port())
    srv = subprocess.Popen(["taskset", "-c", str(cpus[1]), "iperf3", "-s", "-1", "-p", port],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        out = json.loads(run(["taskset", "-c", str(cpus[0]), "iperf3", "-c", "127.0.0.1",
                              "-p", port, "-l", str(length), "-t", str(seconds), "--json"],
                             timeout=STEP_TIMEOUT + seconds))
    finally:
        try:
            srv.wait(timeout=10)  # -1: it ends by itself after one test
        except subprocess.TimeoutExpired:
            stop(srv)  # the client never reached it
    return out["end"]["sum_received"]["bits_per_second"] / 8.0


def sockperf_under_load(cpus, size, mps, seconds):
    """sockperf under-load at `mps` messages/s, every message answered: its p50 and p99
    round trip in ns (it prints half the round trip, in µs)."""
    out = sockperf_client(cpus, "under-load", size, seconds,
                          (f"--mps={mps}", "--reply-every=1"))
    return tuple(2 * figure(rf"percentile {p} =\s*([0-9.]+)", out, "sockperf") * 1000.0
                 for p in (r"50\.000", r"99\.000"))


def rate_rows(a):
    """tcp's rate cells against sockperf under-load, cross-CPU, at each of a.rates."""
    cpus = (0, 1)
    rates = [int(r) for r in a.rates.split(",")]
    seconds = max(2, int(a.seconds))  # sockperf runs whole seconds; both run as long
    s = {}
    for r in range(a.rounds):
        print(f"[rate cross] round {r + 1}/{a.rounds}", file=sys.stderr)
        res = ipcbench(a.build, ["--transports=tcp", "--sizes=64", "--workloads=rate",
                                 "--rates=" + ",".join(map(str, rates)),
                                 f"--pin={cpus[0]},{cpus[1]}"], seconds)
        for mps in rates:
            cell = res[f"rate/tcp/64/rate:{mps}"]
            s.setdefault((mps, "p50"), []).append(cell["unc_p50_ns"])
            s.setdefault((mps, "p99"), []).append(cell["unc_p99_ns"])
            p50, p99 = sockperf_under_load(cpus, 64, mps, seconds)
            s.setdefault((mps, "ref_p50"), []).append(p50)
            s.setdefault((mps, "ref_p99"), []).append(p99)
    rows = []
    for mps in rates:
        for p in ("p50", "p99"):
            rows.append((f"rate/tcp/64/rate:{mps} uncorrected {p} (ns)", "cross",
                         s[(mps, p)], f"sockperf under-load 2×{p}", s[(mps, "ref_" + p)]))
    return rows


def perf_pipe_mean_ns(cpu, loops):
    out = run(["taskset", "-c", str(cpu), "perf", "bench", "sched", "pipe", "-l", str(loops)],
              merge_stderr=True)
    return figure(r"([0-9.]+) usecs/op", out, "perf bench sched pipe") * 1000.0


def reference(build, mech, size, count, cpus, what="rtt_p50_ns"):
    """ipcbench-lat-reference's figure `what`: rtt_p50_ns, or bytes_per_second for tcp-bw."""
    out = run([f"{build}/ipcbench-lat-reference", mech, str(size), str(count),
               str(cpus[0]), str(cpus[1])])
    return figure(what + r"=([0-9.]+)", out, "ipcbench-lat-reference")


def zmq_reference(build, mode, endpoint, size, count, cpus):
    """Runs the local (binding) side on cpus[1] and the remote side on cpus[0]."""
    local_mode, remote_mode = (("lat-local", "lat-remote") if mode == "lat"
                               else ("thr-local", "thr-remote"))
    tool = f"{build}/ipcbench-zmq-reference"
    # The allocator settings ipcbench runs with (context key malloc_tuning), so that
    # both sides pay the same for libzmq's per-message allocations.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(32 << 20),
               MALLOC_TRIM_THRESHOLD_=str(512 << 20))
    local = subprocess.Popen(["taskset", "-c", str(cpus[1]), tool, local_mode, endpoint,
                              str(size), str(count)], text=True, stdout=subprocess.PIPE,
                             env=env)
    try:
        remote = subprocess.run(["taskset", "-c", str(cpus[0]), tool, remote_mode, endpoint,
                                 str(size), str(count)], check=True, text=True,
                                stdout=subprocess.PIPE, env=env, timeout=STEP_TIMEOUT).stdout
        out = local.communicate(timeout=120)[0]
    except subprocess.TimeoutExpired:
        raise StepFailed(f"ipcbench-zmq-reference {mode} {endpoint}: no result within its "
                         "time, killed") from None
    except subprocess.CalledProcessError as e:
        raise StepFailed(f"ipcbench-zmq-reference {remote_mode}: exit status {e.returncode}") \
            from None
    except OSError as e:
        raise StepFailed(f"{tool}: {e.strerror}") from None
    finally:
        if local.poll() is None:
            local.kill()
            local.wait()
    if mode == "lat":
        return 2 * figure(r"average latency: ([0-9.]+)", remote, "ipcbench-zmq-reference") * 1000.0
    return figure(r"mean throughput: ([0-9.]+) \[msg/s\]", out, "ipcbench-zmq-reference")


class HttpPeer:
    """An ipcbench peer serving HTTP on 127.0.0.1 (its echo role), pinned to `cpu`, with a
    fresh token: what a stranger's HTTP client needs to call it (self.port, self.token)."""

    def __init__(self, build, cpu, max_size=1 << 20):
        import secrets
        self.token = secrets.token_hex(16)
        ready_r, ready_w = os.pipe()
        token_r, token_w = os.pipe()
        try:
            self.proc = subprocess.Popen(
                ["taskset", "-c", str(cpu), f"{build}/ipcbench", "--peer", "--role=echo",
                 "--transport=http-tcp", f"--max-size={max_size}", "--address=127.0.0.1",
                 f"--address={ready_w}", f"--address={token_r}"],
                pass_fds=(ready_w, token_r), stdout=subprocess.DEVNULL)
        except OSError as e:
            for fd in (ready_r, ready_w, token_r, token_w):
                os.close(fd)
            raise StepFailed(f"{build}/ipcbench: {e.strerror}") from None
        os.close(ready_w)
        os.close(token_r)
        with os.fdopen(token_w, "w") as w:
            w.write(self.token)
        with os.fdopen(ready_r) as r:
            import select
            if not select.select([r], [], [], 30)[0]:
                self.close()
                raise StepFailed("ipcbench http peer: not serving after 30 s")
            line = r.readline().strip()
        if not line.isdigit():
            self.close()
            raise StepFailed("ipcbench http peer: exited before serving")
        self.port = int(line)

    def close(self):
        stop(self.proc)


def duration_ns(text):
    """'85us', '1.24ms', '2.1s' (h2load's units) in ns."""
    m = re.fullmatch(r"([0-9.]+)(us|ms|s)", text)
    if not m:
        raise StepFailed(f"h2load: unreadable time '{text}'")
    return float(m.group(1)) * {"us": 1e3, "ms": 1e6, "s": 1e9}[m.group(2)]


def h2load_mean_ns(peer, body, count, cpu):
    out = run(["taskset", "-c", str(cpu), "h2load", "--h1", "-c1", "-t1", "-m1", "-n",
               str(count), "-d", body, "-H", f"Authorization: Bearer {peer.token}",
               "-H", "Content-Type: application/octet-stream",
               f"http://127.0.0.1:{peer.port}/echo"], merge_stderr=True)
    ok = figure(r"status codes: (\d+) 2xx", out, "h2load")
    if ok != count:
        raise StepFailed(f"h2load: {ok:.0f} of {count} requests answered 2xx")
    m = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", out)
    if not m:
        raise StepFailed("h2load: no figure in its output")
    return duration_ns(m.group(3))  # min, max, mean


def ab_mean_ns(peer, body, count, cpu):
    out = run(["taskset", "-c", str(cpu), "ab", "-q", "-k", "-c", "1", "-n", str(count),
               "-p", body, "-T", "application/octet-stream",
               "-H", f"Authorization: Bearer {peer.token}",
               f"http://127.0.0.1:{peer.port}/echo"], merge_stderr=True)
    done = figure(r"Complete requests:\s+(\d+)", out, "ab")
    failed = figure(r"Failed requests:\s+(\d+)", out, "ab")
    non2xx = re.search(r"Non-2xx responses:\s+(\d+)", out)
    if done != count or failed or non2xx:
        raise StepFailed(f"ab: {done:.0f} of {count} requests complete, {failed:.0f} failed"
                         + (f", {non2xx.group(1)} not 2xx" if non2xx else ""))
    return figure(r"Time per request:\s+([0-9.]+) \[ms\] \(mean\)", out, "ab") * 1e6


def http_rows(a):
    rows = []
    with tempfile.NamedTemporaryFile(prefix="ipcbench-fidelity-", suffix=".bin") as body:
        body.write(os.urandom(64))
        body.flush()
        for placement in a.placements.split(","):
            cpus = (0, 0) if placement == "same" else (0, 1)
            pin = f"--pin={cpus[0]},{cpus[1]}"
            s = {"ours": [], "h2load": [], "ab": []}
            for r in range(a.rounds):
                print(f"[http {placement}] round {r + 1}/{a.rounds}", file=sys.stderr)
                res = ipcbench(a.build, ["--transports=http-tcp", "--sizes=64",
                                         "--workloads=pingpong", pin], a.seconds)
                s["ours"].append(res["pingpong/http-tcp/64"]["rtt_mean_ns"])
                count = max(1000, int(a.seconds * 1e9 / max(s["ours"][-1], 1.0)))
                for tool, fn in (("h2load", h2load_mean_ns), ("ab", ab_mean_ns)):
                    peer = HttpPeer(a.build, cpus[1])
                    try:
                        s[tool].append(fn(peer, body.name, count, cpus[0]))
                    finally:
                        peer.close()
            rows += [
                ("pingpong/http-tcp/64 rtt mean (ns)", placement, s["ours"],
                 "h2load --h1 -c1 mean", s["h2load"]),
                ("pingpong/http-tcp/64 rtt mean (ns)", placement, s["ours"],
                 "ab -k -c1 mean", s["ab"]),
            ]
    return rows


def zmq_rows(a):
    rows = []
    for placement in a.placements.split(","):
        cpus = (0, 0) if placement == "same" else (0, 1)
        pin = f"--pin={cpus[0]},{cpus[1]}"
        s = {}
        with tempfile.TemporaryDirectory(prefix="ipcbench-fidelity-") as tmp:
            for r in range(a.rounds):
                print(f"[zmq {placement}] round {r + 1}/{a.rounds}", file=sys.stderr)
                res = ipcbench(a.build, ["--transports=zmq-ipc,zmq-tcp", "--sizes=64,64K",
                                         pin], a.seconds)
                for t in ("zmq-ipc", "zmq-tcp"):
                    ep = f"ipc://{tmp}/ref.sock" if t == "zmq-ipc" else None
                    def endpoint():
                        return ep or f"tcp://127.0.0.1:{free_port()}"
                    s.setdefault((t, "lat"), []).append(res[f"pingpong/{t}/64"]["rtt_mean_ns"])
                    s.setdefault((t, "ref_lat"), []).append(
                        zmq_reference(a.build, "lat", endpoint(), 64, 20000, cpus))
                    for size, count in ((64, 2000000), (65536, 50000)):
                        s.setdefault((t, f"thr{size}"), []).append(
                            res[f"throughput/{t}/{size}"]["items_per_second"])
                        s.setdefault((t, f"ref_thr{size}"), []).append(
                            zmq_reference(a.build, "thr", endpoint(), size, count, cpus))
        for t in ("zmq-ipc", "zmq-tcp"):
            rows += [
                (f"pingpong/{t}/64 rtt mean (ns)", placement, s[(t, "lat")],
                 "remote_lat-style 2×latency", s[(t, "ref_lat")]),
                (f"throughput/{t}/64 (msg/s)", placement, s[(t, "thr64")],
                 "local_thr-style", s[(t, "ref_thr64")]),
                (f"throughput/{t}/65536 (msg/s)", placement, s[(t, "thr65536")],
                 "local_thr-style", s[(t, "ref_thr65536")]),
            ]
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--placements", default="same,cross")
    ap.add_argument("--zmq", action="store_true", help="ZeroMQ transports vs libzmq's method")
    ap.add_argument("--http", action="store_true", help="http-tcp vs h2load and ab")
    ap.add_argument("--rate", action="store_true",
                    help="tcp's rate workload vs sockperf under-load")
    ap.add_argument("--rates", default="10000,50000",
                    help="with --rate: offered rates, messages/s")
    a = ap.parse_args()

    rows = []  # (what, placement, ipcbench samples, reference name, reference samples)
    for placement in ([] if a.zmq or a.http or a.rate else a.placements.split(",")):
        cpus = (0, 0) if placement == "same" else (0, 1)
        pin = f"--pin={cpus[0]},{cpus[1]}"
        s = {k: [] for k in ("tcp", "uds", "pipe", "pipe16", "thr", "sockperf", "iperf3",
                             "ref_bw", "ref_tcp", "ref_unix", "ref_pipe", "perf_pipe")}
        for r in range(a.rounds):
            print(f"[{placement}] round {r + 1}/{a.rounds}", file=sys.stderr)
            res = ipcbench(a.build, ["--transports=tcp,uds,pipe", "--sizes=64",
                                     "--workloads=pingpong", pin], a.seconds)
            for t in ("tcp", "uds", "pipe"):
                s[t].append(res[f"pingpong/{t}/64"]["rtt_p50_ns"])
            s["sockperf"].append(sockperf_rtt(cpus, 64, max(2, int(a.seconds))))
            res = ipcbench(a.build, ["--transports=tcp", "--sizes=64K",
                                     "--workloads=throughput", pin], a.seconds)
            s["thr"].append(res["throughput/tcp/65536"]["bytes_per_second"])
            s["iperf3"].append(iperf3_bps(cpus, 65536, max(2, int(a.seconds))))
            s["ref_bw"].append(reference(a.build, "tcp-bw", 65536, 30000, cpus, "bytes_per_second"))
            rounds = 50000 if placement == "same" else 30000
            for mech, key in (("tcp", "ref_tcp"), ("unix", "ref_unix"), ("pipe", "ref_pipe")):
                s[key].append(reference(a.build, mech, 64, rounds, cpus))
            if placement == "same":
                res = ipcbench(a.build, ["--transports=pipe", "--sizes=16",
                                         "--workloads=pingpong", pin], a.seconds)
                s["pipe16"].append(res["pingpong/pipe/16"]["rtt_mean_ns"])
                s["perf_pipe"].append(perf_pipe_mean_ns(cpus[0], 200000))
        rows += [
            ("pingpong/tcp/64 rtt p50 (ns)", placement, s["tcp"], "sockperf 2×p50", s["sockperf"]),
            ("pingpong/tcp/64 rtt p50 (ns)", placement, s["tcp"], "lat_tcp-style reference", s["ref_tcp"]),
            ("pingpong/uds/64 rtt p50 (ns)", placement, s["uds"], "lat_unix-style reference", s["ref_unix"]),
            ("pingpong/pipe/64 rtt p50 (ns)", placement, s["pipe"], "lat_pipe-style reference", s["ref_pipe"]),
            ("throughput/tcp/65536 (GB/s)", placement, [v / 1e9 for v in s["thr"]],
             "iperf3 -l 64K", [v / 1e9 for v in s["iperf3"]]),
            ("throughput/tcp/65536 (GB/s)", placement, [v / 1e9 for v in s["thr"]],
             "bw_tcp-style reference", [v / 1e9 for v in s["ref_bw"]]),
        ]
        if placement == "same":
            rows.append(("pingpong/pipe/16 rtt mean (ns)", placement, s["pipe16"],
                         "perf bench sched pipe", s["perf_pipe"]))

    if a.zmq:
        rows = zmq_rows(a)
    elif a.http:
        rows = http_rows(a)
    elif a.rate:
        rows = rate_rows(a)
    print("| ipcbench cell | placement | ipcbench median | reference | reference median | ratio | samples |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for what, placement, ours, ref, theirs in rows:
        mo, mt = statistics.median(ours), statistics.median(theirs)
        fmt = (lambda v: f"{v:.2f}") if "GB/s" in what else (lambda v: f"{v:.0f}")
        print(f"| {what} | {placement} | {fmt(mo)} | {ref} | {fmt(mt)} | {mo / mt:.3f} | {len(ours)} |")


if __name__ == "__main__":
    try:
        main()
    except StepFailed as e:
        sys.exit(f"fidelity: {e}")
    except KeyError as e:  # a cell missing from ipcbench's results, a key from iperf3's
        sys.exit(f"fidelity: no {e} in a tool's results")
    except (OSError, ValueError) as e:  # a server that would not start, unreadable JSON
        sys.exit(f"fidelity: {e}")
