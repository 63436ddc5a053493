"""``report.sh render``: outputs, self-contained HTML, figures equal to the JSON medians,
several inputs, failed cells, floors and CPU counters (derived fixtures)."""

from __future__ import annotations

import copy
import csv
import json
import math
import re
from html import escape

import pytest

from ipcbench_report import layout as headings

from conftest import (A, B, ERRORS, SAME, STARS, assert_shown, floor_cells, iterations,
                      load, medians, report, save, shown, table, transports)

OUTPUTS = {"index.html", "report.md", "results.csv", "rtt_vs_size.png",
           "throughput_vs_size.png", "rtt_spectrum_64B.png", "ranking.png"}
NS_PER_UNIT = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
# Comparison-table column -> (cell, counter, display scale).
COLUMNS = {
    "RTT p50 64 B (µs)": ("pingpong/{}/64/manual_time", "rtt_p50_ns", 1e-3),
    "RTT p99 64 B (µs)": ("pingpong/{}/64/manual_time", "rtt_p99_ns", 1e-3),
    "RTT p50 4 KiB (µs)": ("pingpong/{}/4096/manual_time", "rtt_p50_ns", 1e-3),
    "RTT p99 4 KiB (µs)": ("pingpong/{}/4096/manual_time", "rtt_p99_ns", 1e-3),
    "throughput 64 B (k msg/s)": ("throughput/{}/64/manual_time", "items_per_second", 1e-3),
    "throughput 1 MiB (GB/s)": ("throughput/{}/1048576/manual_time", "bytes_per_second",
                                1e-9),
}


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "report"
    res = report("render", A, "--out", out)
    assert res.returncode == 0, res.stderr
    return out


@pytest.fixture(scope="module")
def several(tmp_path_factory):
    out = tmp_path_factory.mktemp("several") / "report"
    res = report("render", A, B, SAME, ERRORS, "--out", out)
    assert res.returncode == 0, res.stderr
    return out


def test_outputs_exist(single):
    assert {p.name for p in single.iterdir()} == OUTPUTS
    for name in OUTPUTS:
        assert (single / name).stat().st_size > 0
    assert (single / "rtt_vs_size.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((single / "report.md").read_bytes()) < 1024 * 1024


def test_html_is_self_contained(several):
    html = (several / "index.html").read_text()
    links = re.findall(r"""\b(?:src|href)\s*=\s*["']?([^"' >]+)""", html, re.I)
    assert links, "no src/href at all: plots not inlined?"
    assert not [u for u in links if re.match(r"(https?:)?//", u, re.I)]
    assert not re.search(r"<(script|link|iframe)\b", html, re.I)
    imgs = re.findall(r"<img[^>]*\bsrc=\"([^\"]+)\"", html)
    assert len(imgs) == 4 and all(s.startswith("data:image/png;base64,") for s in imgs)
    assert "position:sticky" in html


def test_markdown_table_equals_json_medians(single):
    doc = load(A)
    header, rows = table((single / "report.md").read_text(), headings.COMPARISON)
    assert [r[0] for r in rows] == transports(doc)          # no floor among them
    for row in rows:
        for title, (cell, counter, scale) in COLUMNS.items():
            expected = medians(doc, cell.format(row[0]), counter) * scale
            assert_shown(row[header.index(title)], expected)


def test_csv_equals_json_medians(single):
    doc = load(A)
    rows = list(csv.DictReader((single / "results.csv").open()))
    cells = {b["run_name"] for b in doc["benchmarks"]}
    assert {r["name"] for r in rows} == cells and len(rows) == len(cells)
    counters = ["rtt_p50_ns", "rtt_p90_ns", "rtt_p99_ns", "rtt_p999_ns", "rtt_max_ns",
                "rtt_min_ns", "rtt_mean_ns", "bytes_per_second", "items_per_second",
                "msg_bytes", "client_cpu", "peer_cpu", "ns_per_call",
                "cpu_client_ns_per_msg", "cpu_peer_ns_per_msg", "ctx_switches_per_msg"]
    for r in rows:
        assert r["file"] == A.name and r["host_name"] == "vm" and r["error"] == "false"
        assert r["repetitions"] == "3" and r["pin_mode"] == "cross"
        for k in counters:
            if r[k]:
                assert math.isclose(float(r[k]), medians(doc, r["name"], k), rel_tol=1e-12)
            else:
                assert k not in iterations(doc, r["name"])[0]
        unit = NS_PER_UNIT[iterations(doc, r["name"])[0]["time_unit"]]
        assert math.isclose(float(r["real_time_ns"]),
                            medians(doc, r["name"], "real_time") * unit, rel_tol=1e-12)
        floor = r["name"] in floor_cells(doc)
        assert (r["workload"], r["transport"]) == (("floor", "") if floor else (
            r["cell"].split("/")[0], r["cell"].split("/")[1]))


def test_cv_warning_is_shown(single):
    md = (single / "report.md").read_text()
    doc = load(A)
    # pingpong/uds-seqpacket/65536 has one slow repetition in this fixture.
    values = [b["rtt_p50_ns"] for b in iterations(doc, "pingpong/uds-seqpacket/65536/"
                                                        "manual_time")]
    assert max(values) / min(values) > 1.3
    assert re.search(r"pingpong/uds-seqpacket/65536: the standard deviation of "
                     r"rtt_p50_ns is [\d.]+ % of the mean", md)


def test_states_what_was_measured(single):
    md = (single / "report.md").read_text()
    header, rows = table(md, headings.COMPARISON)
    doc = load(A)
    info = {t["name"]: t["wait"] for t in json.loads(doc["context"]["ipcbench_transports"])}
    for row in rows:                  # the labels' wait=, which agree with the context
        waits = {b["label"].split("wait=")[1] for b in doc["benchmarks"]
                 if b["run_name"].split("/")[1] == row[0]}
        assert waits == {row[header.index("wait")]} == {info[row[0]]}
    assert {r[header.index("wait")] for r in rows} == {"blocking", "spin",
                                                       "spin-then-futex"}
    ctx = doc["context"]
    for key in ("pin_mode", "pin_client_cpu", "pin_peer_cpu", "wait_strategy",
                "verify_payload", "ipcbench_git_commit", "kernel", "cpu_model"):
        assert re.search(rf"\| {key} \| {re.escape(ctx[key])} \|", md), key
    assert "library_build_type: debug" in md and "round trip" in md
    assert "pin=cross client_cpu=0 peer_cpu=1 wait=blocking" in md
    assert "Local performance (★ 1–5)" in md


def test_states_the_run_directory_file_system(tmp_path):
    """Where the mmap-* files lived (tmpfs: memory; a disk file system: written back) is
    part of what was measured; results from before the key show a dash."""
    doc = copy.deepcopy(load(A))
    doc["context"]["run_dir_fs"] = "tmpfs"
    out = tmp_path / "report"
    res = report("render", save(doc, tmp_path / "fs.json"), A, "--out", out)
    assert res.returncode == 0, res.stderr
    assert re.search(r"\| run_dir_fs \| tmpfs \| — \|", (out / "report.md").read_text())


def test_several_runs_are_labelled_with_pin_mode(several):
    md = (several / "report.md").read_text()
    header, rows = table(md, headings.COMPARISON)
    assert header[:2] == ["transport", "run"]
    labels = {r[1] for r in rows}
    assert len(labels) == 4 and all("pin=" in label for label in labels)
    assert any("pin=same" in label for label in labels)
    assert "differ in CPU placement" in md
    assert "The inputs differ in wait strategy" not in md
    assert "The transports differ in wait strategy (blocking, spin, spin-then-futex;" in md
    # errors.json's failed cells carry no label: its context gives their wait strategy
    errors_rows = [r for r in rows if load(ERRORS)["context"]["date"] in r[1]]
    assert errors_rows and {r[header.index("wait")] for r in errors_rows} == {"blocking"}
    csv_rows = list(csv.DictReader((several / "results.csv").open()))
    assert {r["file"] for r in csv_rows} == {A.name, B.name, SAME.name, ERRORS.name}


def test_failed_cells_show_error(several):
    md = (several / "report.md").read_text()
    header, rows = table(md, headings.COMPARISON)
    doc = load(ERRORS)
    p50 = header.index("RTT p50 64 B (µs)")
    row = next(r for r in rows if r[0] == "pipe" and r[p50] == "error")
    assert doc["context"]["date"] in row[1]
    assert row[header.index("throughput 1 MiB (GB/s)")] == "—"     # not in errors.json
    message = doc["benchmarks"][0]["error_message"]
    html = (several / "index.html").read_text()
    assert f'class="error" title="{escape(message)}"' in html
    errors = md.split(f"## {headings.ERRORS}\n", 1)[1].split("\n## ", 1)[0]
    for b in doc["benchmarks"]:
        assert b["run_name"].removesuffix("/manual_time") in errors
    assert message in errors
    csv_rows = [r for r in csv.DictReader((several / "results.csv").open())
                if r["file"] == ERRORS.name]
    assert len(csv_rows) == 8 and all(r["error"] == "true" and r["error_message"]
                                      for r in csv_rows)


def _wait(doc: dict, run_name: str) -> str:
    return iterations(doc, run_name)[0]["label"].split("wait=")[1]


@pytest.fixture(scope="module", params=[A, SAME], ids=["cross", "same"])
def with_floors(request, tmp_path_factory):
    """A fixture (floors and CPU counters as the suite wrote them) with uds's pingpong
    cells relabelled wait=spin, so one transport mixes wait strategies. Cross-CPU the
    cache-line floor is the lower round trip, same-CPU the futex floor is."""
    doc = copy.deepcopy(load(request.param))
    for b in doc["benchmarks"]:
        if b["name"].startswith("pingpong/uds/"):
            b["label"] = b["label"].replace("wait=blocking", "wait=spin")
    tmp = tmp_path_factory.mktemp("floors")
    path = save(doc, tmp / f"with-floors-{request.param.name}")
    res = report("render", path, "--out", tmp / "report")
    assert res.returncode == 0, res.stderr
    return doc, tmp / "report"


def test_floor_multiples(with_floors):
    doc, out = with_floors
    header, rows = table((out / "report.md").read_text(), headings.COMPARISON)
    futex = medians(doc, "floor/futex_rtt/manual_time", "rtt_p50_ns")
    cacheline = medians(doc, "floor/cacheline_rtt/manual_time", "rtt_p50_ns")
    assert (cacheline < futex) == (doc["context"]["pin_mode"] == "cross")
    # the floor that bounds the hand-off; spin-then-futex may use either: the lower
    rtt_floor = {"blocking": futex, "spin": cacheline, "spin-then-futex": min(futex,
                                                                             cacheline)}
    syscall = medians(doc, "floor/syscall/real_time", "ns_per_call")
    memcpy = medians(doc, "floor/memcpy/1048576/real_time", "bytes_per_second")
    info = {t["name"]: t["wait"] for t in json.loads(doc["context"]["ipcbench_transports"])}
    assert set(info.values()) == {"blocking", "spin", "spin-then-futex"}
    for row in rows:
        t = row[0]
        ping, thr = f"pingpong/{t}/64/manual_time", f"throughput/{t}/64/manual_time"
        rtt = medians(doc, ping, "rtt_p50_ns")
        text = row[header.index("RTT p50 64 B (µs)")]
        assert_shown(text, rtt / 1e3)
        assert_shown(text.split("×")[1], rtt / rtt_floor[_wait(doc, ping)])
        assert row[header.index("wait")] == ("spin, blocking" if t == "uds" else info[t])
        gbps = medians(doc, f"throughput/{t}/1048576/manual_time", "bytes_per_second")
        assert_shown(row[header.index("throughput 1 MiB (GB/s)")].split("×")[1],
                     memcpy / gbps)
        msgs = medians(doc, thr, "items_per_second")
        msgs_text = row[header.index("throughput 64 B (k msg/s)")]
        cpu = medians(doc, thr, "cpu_client_ns_per_msg")
        cpu_text = row[header.index("client CPU/msg 64 B (ns)")]
        assert_shown(msgs_text, msgs / 1e3)
        assert_shown(cpu_text, cpu)
        if _wait(doc, thr) == "blocking":     # at least one system call per message
            assert_shown(msgs_text.split("×")[1], 1e9 / msgs / syscall)
            assert_shown(cpu_text.split("×")[1], cpu / syscall)
        else:                                 # spinning: the syscall floor bounds nothing
            assert "×" not in msgs_text and "×" not in cpu_text
        assert_shown(row[header.index("ctx switches/msg 64 B")],
                     medians(doc, thr, "ctx_switches_per_msg"))


def test_floors_listed_and_not_transports(with_floors):
    doc, out = with_floors
    md = (out / "report.md").read_text()
    floors = [re.sub(r"/(manual|real)_time$", "", f) for f in floor_cells(doc)]
    _, rows = table(md, headings.FLOORS)
    assert [r[1] for r in rows] == floors and len(floors) == 7
    for section in (headings.COMPARISON, headings.STARS, headings.CRITERIA):
        assert [r[0] for r in table(md, section)[1]] == transports(doc), section
    assert "CPU per message: not measured" not in md
    assert "The transports differ in wait strategy" in md
    csv_rows = list(csv.DictReader((out / "results.csv").open()))
    syscall = next(r for r in csv_rows if r["cell"] == "floor/syscall")
    assert float(syscall["ns_per_call"]) == medians(doc, "floor/syscall/real_time",
                                                    "ns_per_call")
    assert {r["transport"] for r in csv_rows if r["cell"] in floors} == {""}


def _below_floor(md: str) -> tuple[dict[str, float], list[str], str]:
    """Cells the Comparison table shows under their floor, named as the note names them
    (with the run when the table has a run column), with their multiples; the note's own
    list; and the note ("" when there is none)."""
    header, rows = table(md, headings.COMPARISON)
    titles = [re.sub(r" \([^()]*\)$", "", h) for h in header]
    multi = "run" in header
    below = {}
    for row in rows:
        who = f"{row[0]} ({row[1]})" if multi else row[0]
        for i, text in enumerate(row):
            m = re.search(r"\(×([0-9.]+)\)", text)
            if m and float(m.group(1)) < 1:
                below[f"{who} {titles[i]} (×{m.group(1)})"] = float(m.group(1))
    section = md.split(f"## {headings.COMPARISON}\n", 1)[1].split("\n## ", 1)[0]
    note = [ln for ln in section.splitlines() if ln.startswith("- Below the floor")]
    if not note:
        return below, [], ""
    listed = note[0].split(": ", 1)[1].split(". Such a cell")[0]
    listed = re.sub(r" and \d+ more$", "", listed)
    return below, [x.strip() for x in re.findall(r"[^,]+?\(×[0-9.]+\)", listed)], note[0]


@pytest.mark.parametrize("futex_factor,runs", [(None, 1), (1.3, 1), (3.0, 1), (1.3, 2),
                                                (1.0004, 1)])
def test_cells_below_their_floor_are_named(tmp_path, futex_factor, runs):
    """A figure faster than the floor that should bound it is named under the table,
    lowest first, with why that can happen; none below, no note. The fixtures have cells
    below their floor (early quick runs); None lowers every floor out of reach, the
    others raise the futex floor past pipe's round trip (3×: more cells than the note
    lists; two runs: each name carries its run; 1.0004: pipe at ×0.9996, shown as ×1,
    is not named)."""
    paths = []
    for k, src in enumerate([A, B][:runs]):
        doc = copy.deepcopy(load(src))
        pipe = medians(doc, "pingpong/pipe/64/manual_time", "rtt_p50_ns")
        for name in floor_cells(doc):
            for b in iterations(doc, name):
                if futex_factor is None:  # every floor a thousandth of its cost
                    for key, f in (("rtt_p50_ns", 1e-3), ("ns_per_call", 1e-3),
                                   ("bytes_per_second", 1e3)):
                        if key in b:
                            b[key] *= f
                elif name == "floor/futex_rtt/manual_time":
                    b["rtt_p50_ns"] = pipe * futex_factor
        paths.append(save(doc, tmp_path / f"below-{k}.json"))
    res = report("render", *paths, "--out", tmp_path / "report")
    assert res.returncode == 0, res.stderr
    md = (tmp_path / "report" / "report.md").read_text()
    below, listed, note = _below_floor(md)
    assert bool(below) == (futex_factor is not None) == bool(note)
    assert set(listed) <= set(below) and len(set(listed)) == len(listed) == min(6, len(below))
    assert [below[x] for x in listed] == sorted(below.values())[:len(listed)]
    assert (f" and {len(below) - 6} more. " in note) == (len(below) > 6)
    if futex_factor == 1.3:
        assert [x for x in below if x.startswith("pipe")]
        assert "the host can move the CPUs" in note and "does not bound" in note
    if futex_factor == 3.0:
        assert len(below) > 6
    if futex_factor == 1.0004:
        header, rows = table(md, headings.COMPARISON)
        pipe_row = next(r for r in rows if r[0] == "pipe")
        assert "(×1)" in pipe_row[header.index("RTT p50 64 B (µs)")]
        assert not [x for x in listed if x.startswith("pipe RTT p50 64 B")]


def test_context_floors_are_shown_but_never_a_multiple(tmp_path):
    """floor/cacheline_pair_rtt and floor/shm_stream/<bytes> are listed and drawn, but every
    (×N) still comes from floor/cacheline_rtt, floor/futex_rtt and floor/memcpy, even
    when a context floor is the lower bound (made so here: half the cache-line round
    trip, a third of memcpy)."""
    doc = copy.deepcopy(load(A))
    derived = {"floor/cacheline_rtt/manual_time":
               ("floor/cacheline_pair_rtt/manual_time", "rtt_p50_ns", 0.5),
               "floor/memcpy/1048576/real_time":
               ("floor/shm_stream/1048576/manual_time", "bytes_per_second", 1 / 3)}
    for b in list(doc["benchmarks"]):
        if b["run_name"] in derived:
            name, key, factor = derived[b["run_name"]]
            c = copy.deepcopy(b)
            c["name"] = c["name"].replace(c["run_name"], name)
            c["run_name"] = name
            if key in c:
                c[key] *= factor
            doc["benchmarks"].append(c)
    path = save(doc, tmp_path / "context-floors.json")
    res = report("render", path, "--out", tmp_path / "report")
    assert res.returncode == 0, res.stderr
    md = (tmp_path / "report" / "report.md").read_text()
    listed = [r[1] for r in table(md, headings.FLOORS)[1]]
    assert "floor/cacheline_pair_rtt" in listed and "floor/shm_stream/1048576" in listed
    header, rows = table(md, headings.COMPARISON)
    cacheline = medians(doc, "floor/cacheline_rtt/manual_time", "rtt_p50_ns")
    memcpy = medians(doc, "floor/memcpy/1048576/real_time", "bytes_per_second")
    spinning = [r for r in rows if _wait(doc, f"pingpong/{r[0]}/64/manual_time") == "spin"]
    assert spinning
    for row in spinning:
        rtt = medians(doc, f"pingpong/{row[0]}/64/manual_time", "rtt_p50_ns")
        assert_shown(row[header.index("RTT p50 64 B (µs)")].split("×")[1], rtt / cacheline)
    for row in rows:
        gbps = medians(doc, f"throughput/{row[0]}/1048576/manual_time", "bytes_per_second")
        assert_shown(row[header.index("throughput 1 MiB (GB/s)")].split("×")[1],
                     memcpy / gbps)
    for png in ("rtt_vs_size.png", "throughput_vs_size.png"):
        assert (tmp_path / "report" / png).stat().st_size > 0


def test_shown_helper():
    assert shown("19.8 (×172)") == (19.8, 0.05 + 1e-12)
    assert shown("514")[1] == 0.5 + 1e-12


def test_price_of_each_layer(tmp_path):
    """Each transport built on another one of the run is set against it, figures equal
    to the ratios of the JSON medians; a run without such pairs says so."""
    from conftest import LAYERS
    out = tmp_path / "report"
    res = report("render", LAYERS, "--out", out)
    assert res.returncode == 0, res.stderr
    doc = load(LAYERS)
    built_on = {t["name"]: t["built_on"]
                for t in json.loads(doc["context"]["ipcbench_transports"])}
    header, rows = table((out / "report.md").read_text(), headings.LAYERS)
    assert header[1] == "against"
    assert {(r[0], r[header.index("size")]) for r in rows} == {
        (t, s) for t in ("zmq-ipc", "grpc-uds", "grpc-stream-uds") for s in ("64 B", "64 KiB")}
    for row in rows:
        t, base = row[0], row[1]
        assert base == built_on[t] == "uds"
        size = 64 if row[header.index("size")] == "64 B" else 65536

        def med(kind, name, counter):
            return medians(doc, f"{kind}/{name}/{size}/manual_time", counter)
        assert_shown(row[header.index("RTT ×")],
                     med("pingpong", t, "rtt_p50_ns") / med("pingpong", base, "rtt_p50_ns"))
        assert_shown(row[header.index("throughput ÷")],
                     med("throughput", base, "items_per_second")
                     / med("throughput", t, "items_per_second"))
    res = report("render", A, "--out", tmp_path / "plain")
    assert res.returncode == 0, res.stderr
    md = (tmp_path / "plain" / "report.md").read_text()
    assert "No transport of these inputs is built on another" in md


# (transport, size) -> extra RTT p50 (ns), layer floor, base floor, share: worked out by
# hand from encodings-known.json (see conftest.ENCODINGS).
ENCODING_ANSWERS = {
    ("zmq-ipc", "64 B"): ("5000", "none 0", "framing 100", "-2.0 %"),      # (0 - 100) / 5000
    ("grpc-uds", "64 B"): ("10000", "protobuf 600", "framing 100", "5.0 %"),  # 500 / 10000
    ("grpc-stream-uds", "64 B"): ("300", "protobuf 600", "framing 100", "166.7 %"),
    ("zmq-ipc", "64 KiB"): ("-1000", "none 0", "framing 50.0", "—³"),       # not slower
    ("grpc-uds", "64 KiB"): ("12000", "protobuf —²", "framing 50.0", "—²"),  # floor failed
    ("grpc-stream-uds", "64 KiB"): ("20000", "protobuf —²", "framing 50.0", "—²"),
}
ENCODING_COLUMNS = ["extra RTT p50 (ns)", "encoding floor (ns)", "base encoding floor (ns)",
                    "encoding share"]


def test_encoding_share_of_each_layer(tmp_path):
    """The layer table gives each layer's extra round trip, the encoding floors of layer
    and base (matched by their encoding, none counting 0) and the share of the extra
    time the difference explains; a missing floor or a layer that is not slower shows
    "—" with its footnote, never a figure."""
    from conftest import ENCODINGS
    out = tmp_path / "report"
    res = report("render", ENCODINGS, "--out", out)
    assert res.returncode == 0, res.stderr
    md = (out / "report.md").read_text()
    header, rows = table(md, headings.LAYERS)
    got = {(r[0], r[header.index("size")]): tuple(r[header.index(c)] for c in ENCODING_COLUMNS)
           for r in rows}
    assert got == ENCODING_ANSWERS
    section = md.split(f"## {headings.LAYERS}\n", 1)[1].split("\n## ", 1)[0]
    assert "- ² the run has no successful floor for the encoding at this size" in section
    assert "- ³ the layer's round trip is not longer than its base's" in section
    assert "¹" not in section
    html = (out / "index.html").read_text()
    assert "166.7 %" in html and "protobuf —²" in html


def test_encoding_share_computed_from_the_floors():
    """compute.layers reads the floors by each transport's encoding: the share is
    (layer floor - base floor) / (layer RTT - base RTT) of the medians."""
    from conftest import ENCODINGS
    from ipcbench_report import compute, load as loader
    run = loader.load_runs([ENCODINGS])[0]
    by = {(x.transport, x.size): x for x in compute.layers(run)}
    x = by[("grpc-uds", 64)]
    assert x.encodings == ("protobuf", "framing")
    assert x.encoding_ns == pytest.approx((600, 100))
    assert x.extra_rtt == pytest.approx(10000)
    assert x.encoding_share == pytest.approx(0.05)
    assert by[("zmq-ipc", 64)].encoding_ns == pytest.approx((0.0, 100))
    assert by[("grpc-uds", 65536)].encoding_ns[0] is None       # its floor failed
    assert by[("zmq-ipc", 65536)].encoding_share is None        # faster than its base


def test_layers_without_encodings_say_so(tmp_path):
    """Result files written before transports named their encoding: every encoding cell
    is "—" with the footnote that says why."""
    from conftest import LAYERS
    out = tmp_path / "report"
    assert report("render", LAYERS, "--out", out).returncode == 0
    md = (out / "report.md").read_text()
    header, rows = table(md, headings.LAYERS)
    for r in rows:
        assert [r[header.index(c)] for c in ENCODING_COLUMNS[1:]] == ["—¹"] * 3
    assert "- ¹ the run's description of the transport states no encoding" in md


def test_every_transport_against_uds(tmp_path):
    """One scale for all: each transport's round trip and message rate as multiples of
    uds (the run's first transport of family sockets) from the same run, equal to the
    ratios of the JSON medians."""
    from conftest import LAYERS
    out = tmp_path / "report"
    assert report("render", LAYERS, "--out", out).returncode == 0
    doc = load(LAYERS)
    header, rows = table((out / "report.md").read_text(), "Every transport against uds")
    assert {r[0] for r in rows} == set(transports(doc)) - {"uds"}
    assert {r[1] for r in rows} == {"uds"}
    section = (out / "report.md").read_text().split("## Every transport against uds\n")[1]
    assert "The base is the first transport of family sockets in the run's transport " \
           "descriptions" in section.split("\n## ")[0]
    for row in rows:
        size = 64 if row[header.index("size")] == "64 B" else 65536
        def med(kind, name, counter):
            return medians(doc, f"{kind}/{name}/{size}/manual_time", counter)
        assert_shown(row[header.index("RTT ×")],
                     med("pingpong", row[0], "rtt_p50_ns") / med("pingpong", "uds", "rtt_p50_ns"))
        assert_shown(row[header.index("throughput ÷")],
                     med("throughput", "uds", "items_per_second")
                     / med("throughput", row[0], "items_per_second"))


# --- findings: stated only when the data behind them is there ----------------------

TRANSPORTS = headings.STARS
AGREES = "the measured order agrees with the classic ratings"


def _render_md(tmp_path, doc: dict, name: str) -> str:
    out = tmp_path / name
    res = report("render", save(doc, tmp_path / f"{name}.json"), "--out", out)
    assert res.returncode == 0, res.stderr
    return (out / "report.md").read_text()


def _stars(md: str) -> dict[str, str]:
    header, rows = table(md, TRANSPORTS)
    return {r[0]: r[header.index("local performance")] for r in rows}


def _order_notes(md: str) -> list[str]:
    section = md.split(f"## {TRANSPORTS}\n", 1)[1].split("\n## ", 1)[0]
    after = section.split("The measured order against the classic ratings:\n", 1)[1]
    return [ln[2:] for ln in after.splitlines() if ln.startswith("- ")]


def _only(doc: dict, keep: set[str]) -> dict:
    """``doc`` with the cells and ipcbench_transports entries of ``keep`` only."""
    doc = copy.deepcopy(doc)
    doc["benchmarks"] = [b for b in doc["benchmarks"] if b["run_name"].split("/")[1] in keep]
    info = [t for t in json.loads(doc["context"]["ipcbench_transports"]) if t["name"] in keep]
    doc["context"]["ipcbench_transports"] = json.dumps(info)
    return doc


def test_stars_and_disagreements_on_known_answers(tmp_path):
    """stars-known.json: shm-spin, posix-mq, pipe, uds score 1, 0.75, 0.5, 0 on both
    metrics, so stars = 1 + round(4 × score) = 5, 4, 3, 1. Classic: shm 5, pipes 4,
    sockets 3, message queues 1, so posix-mq (classic 1) rates above pipe and uds, and
    nothing else contradicts the classic order."""
    md = _render_md(tmp_path, load(STARS), "known")
    assert _stars(md) == {"shm-spin": "★★★★★", "posix-mq": "★★★★☆", "pipe": "★★★☆☆",
                          "uds": "★☆☆☆☆"}
    mq = "posix-mq ★★★★☆ (message queues, classic ★☆☆☆☆)"
    assert _order_notes(md) == [
        f"stars-host: pipe rates ★★★☆☆ here, below {mq}, although the classic table "
        "rates pipes higher (★★★★☆).",
        f"stars-host: uds rates ★☆☆☆☆ here, below {mq}, although the classic table "
        "rates sockets higher (★★★☆☆)."]
    assert AGREES not in md


def test_agreement_is_stated_only_when_checked(tmp_path):
    """With one rated transport, or two with the same stars, there is nothing to set
    against the classic order, so no agreement is claimed (it used to be). Without
    posix-mq the measured order (shm-spin 5, pipe 3, uds 1) follows the classic one over
    3 pairs: said so."""
    doc = load(STARS)
    for keep in ({"shm-spin"}, {"shm-spin", "pipe"}):
        doc1 = _only(doc, keep)
        if keep == {"shm-spin", "pipe"}:      # pipe measured at 64 B only: no stars
            doc1["benchmarks"] = [b for b in doc1["benchmarks"]
                                  if not b["run_name"].startswith("throughput/pipe/")]
            for b in doc1["benchmarks"]:
                if b["run_name"].startswith("pingpong/shm-spin/"):
                    b["rtt_p50_ns"] = 10000.0      # the same as pipe's: no distinct values
        md = _render_md(tmp_path, doc1, "one-" + "-".join(sorted(keep)))
        assert AGREES not in md.lower()
        assert set(_stars(md).values()) == {"—"}
        assert _order_notes(md) == [
            "stars-host: not set against the classic ratings: no two transports with a "
            "local rating fall in classic categories of different rating."]
    md = _render_md(tmp_path, _only(doc, {"shm-spin", "pipe", "uds"}), "agree")
    assert _stars(md) == {"shm-spin": "★★★★★", "pipe": "★★★☆☆", "uds": "★☆☆☆☆"}
    assert _order_notes(md) == [
        f"stars-host: {AGREES}: no transport rates higher here than one with a higher "
        "classic rating (3 pair(s) of rated transports in classic categories of "
        "different rating)."]


def test_cv_claim_only_over_cells_with_a_cv(tmp_path):
    """'Every CV ≤ 10 %' needs CVs: without repetitions (quick-same) none is known."""
    out = tmp_path / "same"
    assert report("render", SAME, "--out", out).returncode == 0
    noise = (out / "report.md").read_text().split(f"## {headings.NOISE}", 1)[1]
    noise = noise.split("\n## ", 1)[0]
    assert "Every cell" not in noise
    assert "No cell has a CV (fewer than two successful repetitions, or a zero mean), so " \
           "the noise is unknown." in noise
    md = _render_md(tmp_path, load(STARS), "cv")           # 3 repetitions, CV 1 %
    assert "- Every cell's primary metric has a CV at or below 10 % (8 cells)." in md
    doc = copy.deepcopy(load(STARS))                       # one cell with 1 repetition
    doc["benchmarks"] = [b for b in doc["benchmarks"]
                         if b["run_name"] != "pingpong/uds/64/manual_time"
                         or b["repetition_index"] == 0]
    md = _render_md(tmp_path, doc, "cv-one")
    assert "- Every cell with a CV (7 of 8) has it at or below 10 %; 1 other cell(s) have " \
           "none (fewer than two successful repetitions, or a zero mean)." in md


def test_absence_sentences_are_true(tmp_path):
    """"No floor/* cells" only without floor cells (failed floors are still floors); "no
    uds to compare with" only when no uds was measured beside another transport."""
    doc = copy.deepcopy(load(A))
    for b in doc["benchmarks"]:
        if b["run_name"].startswith("floor/") and b["run_type"] == "iteration":
            b["error_occurred"], b["error_message"] = True, "injected"
    md = _render_md(tmp_path, doc, "failed-floors")
    comparison = md.split(f"## {headings.COMPARISON}\n", 1)[1].split("\n## ", 1)[0]
    assert "No floor/* cells in these inputs" not in comparison
    assert "No multiples of the machine floor are shown: no floor/* cell of these inputs " \
           "that succeeded bounds a figure of this table." in comparison
    md = _render_md(tmp_path, _only(load(A), {"uds"}), "uds-only")
    assert "No run of these inputs measured uds and another transport at 64 B or 64 KiB, " \
           "so there is nothing to set against uds." in md
    assert "No floor/* cells in these inputs, so no multiples" in md
