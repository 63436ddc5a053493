"""Transports are rated and compared by the family their description declares
(``family`` in ``ipcbench_transports``), never by name: the classic column follows the
family, the base of "every transport against one base" is the run's first transport of
family sockets (or ``--relative-to NAME``), and result files written before the field
existed render without a classic rating and say so once."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from ipcbench_report import compute, layout, render_md
from ipcbench_report.load import load_runs

from conftest import (A, LAYERS, R9A, STARS, assert_shown, load, medians, report, save, table,
                      transports)


def _described(doc: dict, edit) -> dict:
    """Copy of ``doc`` whose transport descriptions are ``edit(list)`` (serialised back)."""
    doc = copy.deepcopy(doc)
    info = json.loads(doc["context"]["ipcbench_transports"])
    doc["context"]["ipcbench_transports"] = json.dumps(edit(info) or info)
    return doc


def _set_family(doc: dict, families: dict[str, str | None]) -> dict:
    """``doc`` with the families of ``families`` changed (``None``: key removed)."""
    def edit(info):
        for t in info:
            if t["name"] in families:
                if families[t["name"]] is None:
                    t.pop("family", None)
                else:
                    t["family"] = families[t["name"]]
    return _described(doc, edit)


def _without_family(doc: dict) -> dict:
    """``doc`` as a result file from before the family field: no description has one."""
    return _set_family(doc, {t: None for t in transports(doc)})


def _only(doc: dict, keep: set[str]) -> dict:
    doc = copy.deepcopy(doc)
    doc["benchmarks"] = [b for b in doc["benchmarks"]
                         if b["run_name"].startswith("floor/")
                         or b["run_name"].split("/")[1] in keep]
    return _described(doc, lambda info: [t for t in info if t["name"] in keep])


def _md(tmp_path: Path, docs: list[dict], relative_to: str | None = None) -> str:
    """report.md of ``docs`` (rendered in-process; the plots are not drawn)."""
    paths = [save(d, tmp_path / f"in-{i}.json") for i, d in enumerate(docs)]
    model = compute.build(load_runs(paths), relative_to)
    return render_md.render(layout.document(model, [], (Path("ranking.png"), "")))


def _classic(md: str) -> dict[str, tuple[str, str]]:
    header, rows = table(md, layout.STARS)
    return {r[0]: (r[header.index("classic category")], r[header.index("classic")])
            for r in rows}


def _section(md: str, title: str) -> str:
    return md.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_every_fixture_transport_has_a_family():
    """The fixtures carry each transport's family, as the suite writes it today."""
    for path in Path(A).parent.glob("*.json"):
        info = json.loads(load(path)["context"]["ipcbench_transports"])
        assert all(t["family"] in {c.family for c in compute.CLASSIC} for t in info), path


def test_classic_column_follows_the_family(tmp_path):
    """posix-mq declared "RPC" moves from message queues (classic ★) to the RPC column
    (★★★): in stars-known (shm-spin, posix-mq, pipe, uds score 5, 4, 3, 1) only pipe
    (classic ★★★★) still rates below it; uds (sockets, ★★★) no longer does."""
    md = _md(tmp_path, [_set_family(load(STARS), {"posix-mq": "RPC"})])
    assert _classic(md) == {
        "shm-spin": ("memory-mapped files / shared memory", "★★★★★"),
        "posix-mq": ("RPC (gRPC in the article)", "★★★☆☆"),
        "pipe": ("pipes", "★★★★☆"), "uds": ("sockets", "★★★☆☆")}
    notes = [ln for ln in _section(md, layout.STARS).splitlines()
             if ln.startswith("- stars-host: ")]
    assert notes == ["- stars-host: pipe rates ★★★☆☆ here, below posix-mq ★★★★☆ (RPC (gRPC "
                     "in the article), classic ★★★☆☆), although the classic table rates "
                     "pipes higher (★★★★☆)."]
    header, rows = table(md, layout.CRITERIA)
    assert {r[0]: r[header.index("family")] for r in rows}["posix-mq"] == "RPC"


def test_a_new_name_is_rated_by_its_family(tmp_path):
    """A transport the report has never heard of (posix-mq renamed) is filed by its
    family, and a family outside the classic table gets no rating, saying which."""
    text = STARS.read_text().replace("posix-mq", "brand-new")
    doc = json.loads(text)
    md = _md(tmp_path, [doc])
    assert _classic(md)["brand-new"] == ("message queues", "★☆☆☆☆")
    md = _md(tmp_path, [_set_family(doc, {"brand-new": "carrier pigeons"})])
    assert _classic(md)["brand-new"] == ("— (family carrier pigeons: no classic rating)", "—")
    assert "carry no family" not in md


def test_result_files_without_family_render_with_one_note(tmp_path):
    """A result file from before the family field: no classic rating, no default base,
    one sentence saying why; beside a current file only its own transports are named."""
    old = _without_family(load(A))
    out = tmp_path / "report"
    res = report("render", save(old, tmp_path / "old.json"), "--out", out)
    assert res.returncode == 0, res.stderr
    md = (out / "report.md").read_text()
    assert set(_classic(md).values()) == {("— (no family stated)", "—")}
    n = len(transports(old))
    assert md.count("carry no family") == 1
    assert f"{n} transport(s) carry no family ({', '.join(transports(old))}): their " \
           "descriptions state none, as in result files written before ipcbench recorded " \
           "each transport's family, so they are not rated against the classic table." in md
    assert "not set against the classic ratings" in md
    relative = _section(md, "Every transport against one base")
    assert "No run of these inputs has a base" in relative
    md = _md(tmp_path, [old], "uds")                  # --relative-to still works
    assert table(md, "Every transport against uds")[1]
    one_old = _set_family(load(STARS), {"pipe": None})
    md = _md(tmp_path, [one_old, load(A)])
    assert md.count("carry no family") == 1
    assert "stars-host: 1 transport(s) carry no family (pipe)" in md
    assert _classic(md)["pipe"] == ("pipes", "★★★★☆")    # A declares pipe's family


def _relative_rows(md: str, base: str) -> dict[tuple[str, str], list[str]]:
    header, rows = table(md, f"Every transport against {base}")
    assert {r[1] for r in rows} == {base}
    return {(r[0], r[header.index("size")]): r for r in rows}


def test_base_is_the_first_socket_of_the_run(tmp_path):
    """Without uds, tcp (the next transport of family sockets) is the base; the order of
    the descriptions decides, not a name; the text says why."""
    doc = load(R9A)
    md = _md(tmp_path, [_only(doc, {"pipe", "tcp", "shm-spin"})])
    rows = _relative_rows(md, "tcp")
    assert {t for t, _ in rows} == {"pipe", "shm-spin"}
    header = table(md, "Every transport against tcp")[0]
    for (t, size), row in rows.items():
        assert size == "64 B"
        assert_shown(row[header.index("RTT ×")],
                     medians(doc, f"pingpong/{t}/64/manual_time", "rtt_p50_ns")
                     / medians(doc, "pingpong/tcp/64/manual_time", "rtt_p50_ns"))
    assert "The base is the first transport of family sockets in the run's transport " \
           "descriptions" in md
    reordered = _described(doc, lambda info: sorted(info, key=lambda t: t["name"] != "tcp"))
    assert {t for t, _ in _relative_rows(_md(tmp_path, [reordered]), "tcp")} == {
        "pipe", "uds", "shm-spin"}
    no_socket = _set_family(doc, {"uds": "pipes", "tcp": "pipes"})
    md = _md(tmp_path, [no_socket])
    assert "no transport of family sockets was measured" in md
    assert "## Every transport against one base" in md


def test_relative_to_chooses_the_base(tmp_path):
    out = tmp_path / "report"
    res = report("render", LAYERS, "--relative-to", "zmq-ipc", "--out", out)
    assert res.returncode == 0, res.stderr
    md = (out / "report.md").read_text()
    rows = _relative_rows(md, "zmq-ipc")
    assert {t for t, _ in rows} == set(transports(load(LAYERS))) - {"zmq-ipc"}
    assert "The base is chosen with --relative-to." in md
    assert "## Every transport against uds" not in md
