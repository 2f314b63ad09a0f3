"""Codex's import ledger as we read and rewrite it, and the mirror's sha256 (no Codex binary needed).

Why: Codex refuses to detect anything when its ledger does not parse, and it rewrites that file
without a lock, so every byte we write must be what serde_json would write and no record or field of
Codex's may go missing. The bytes below were written by the real codex 0.169.0 (and 0.171.0 writes
the same); tests/test_coexist_probe.py checks the same things against both real binaries.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.codex import codex_ledger, mirror
from daemon.codex.codex_ledger import CodexLedgerError, ImportRecord
from support import REPO, wait_stopped_at

# Written by codex-cli 0.169.0 for two sources whose title has é, U+2028, a quote and \x01.
CODEX_WRITTEN = (
    '{\n  "records": [\n    {\n      "source_path": "/tmp/p/home/.claude/projects/-proj/s0.jsonl",\n'
    '      "content_sha256": "a3cbd65d440848e4c235d8be01ba4a0c6f8b1f4d3dd107f39183ab385818d552",\n'
    '      "imported_thread_id": "01a23580-d7b9-7780-8379-f9254f22dd21",\n      "imported_at": 1796193966,\n'
    '      "source_modified_at": 1796193965231041905,\n      "connector_names": [],\n'
    '      "title": "h\u00e9llo \u2028 \\"q\\" \\u0001 \u00fcn\u00ef"\n    },\n    {\n'
    '      "source_path": "/tmp/p/home/.claude/projects/-proj/s1.jsonl",\n'
    '      "content_sha256": "a3cbd65d440848e4c235d8be01ba4a0c6f8b1f4d3dd107f39183ab385818d552",\n'
    '      "imported_thread_id": "01a23580-d7d9-7662-a3a7-3a2289908f45",\n      "imported_at": 1796193966,\n'
    '      "source_modified_at": 1796193965231308285,\n      "connector_names": [],\n'
    '      "title": "h\u00e9llo \u2028 \\"q\\" \\u0001 \u00fcn\u00ef"\n    }\n  ],\n'
    '  "detected_connector_records": []\n}'
).encode()


def record(path: str, thread: str = "01a23580-0000-7000-8000-000000000001", sha: str = "ab" * 32,
           title: str | None = "t") -> ImportRecord:
    return ImportRecord(source_path=path, content_sha256=sha, imported_thread_id=thread, imported_at=1796190000,
                        source_modified_at=1796190000123456789, connector_names=[], title=title)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "codex").mkdir()
    return tmp_path / "codex"


def ledger_file(home: Path) -> Path:
    return home / codex_ledger.FILE_NAME


# -- format ----------------------------------------------------------------------------------------

def test_codex_written_bytes_round_trip_exactly() -> None:
    raw, ledger = codex_ledger.parse(CODEX_WRITTEN)
    assert codex_ledger.encode(raw) == CODEX_WRITTEN
    assert [r.imported_thread_id for r in ledger.records] == ["01a23580-d7b9-7780-8379-f9254f22dd21",
                                                             "01a23580-d7d9-7662-a3a7-3a2289908f45"]
    assert ledger.records[0].source_modified_at == 1796193965231041905


@settings(max_examples=200, deadline=None)
@given(st.text(), st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_encoding_is_serde_pretty_for_any_string_and_i64(text: str, number: int) -> None:
    """serde_json escapes only `"`, `\\` and control characters (\\b \\f \\n \\r \\t short, others
    \\u00xx lower-case) and writes everything else as raw UTF-8."""
    encoded = codex_ledger.encode({"records": [], "s": text, "n": number}).decode()
    serde = "".join({'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                     "\t": "\\t"}.get(c, f"\\u{ord(c):04x}" if ord(c) < 0x20 else c) for c in text)
    assert encoded == f'{{\n  "records": [],\n  "s": "{serde}",\n  "n": {number}\n}}'


def test_older_ledger_without_optional_fields_parses() -> None:
    old = b'{"records":[{"source_path":"/a","content_sha256":"00","imported_thread_id":"x","imported_at":1}]}'
    _, ledger = codex_ledger.parse(old)
    assert ledger.records[0].source_modified_at is None and ledger.records[0].connector_names == []
    assert ledger.detected_connector_records == []


@pytest.mark.parametrize("bad", [b"", b"{", b"[]", b'{"records": 3}', b'{"detected_connector_records": []}',
                                 b'{"records":[{"source_path":"/a"}]}'])
def test_what_codex_would_refuse_does_not_parse(bad: bytes) -> None:
    with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)):
        codex_ledger.parse(bad)


# -- upsert ----------------------------------------------------------------------------------------

def test_upsert_creates_the_file_as_codex_would(home: Path) -> None:
    codex_ledger.upsert(home, record("/src/a.jsonl"))
    data = ledger_file(home).read_bytes()
    assert not data.endswith(b"\n")
    assert json.loads(data) == {"records": [msgspec.to_builtins(record("/src/a.jsonl"))],
                                "detected_connector_records": []}
    assert list(json.loads(data)["records"][0]) == ["source_path", "content_sha256", "imported_thread_id",
                                                    "imported_at", "source_modified_at", "connector_names", "title"]
    # Private like every file we create (Codex, the same user, reads and rewrites it all the same).
    assert stat.S_IMODE(ledger_file(home).stat().st_mode) == 0o600
    assert [p.name for p in home.iterdir() if p.name.endswith(".tmp")] == []


def test_upsert_keeps_codex_records_unknown_fields_and_mode(home: Path) -> None:
    raw = json.loads(CODEX_WRITTEN)
    raw["records"][0]["future_field"] = {"nested": [1, None, "x"]}
    raw["future_top"] = "kept"
    path = ledger_file(home)
    path.write_bytes(codex_ledger.encode(raw))
    path.chmod(0o600)
    codex_ledger.upsert(home, record("/src/new.jsonl"))
    after = json.loads(path.read_bytes())
    assert after["records"][:2] == raw["records"]  # Codex's records untouched, in place
    assert after["records"][2]["source_path"] == "/src/new.jsonl"
    assert after["future_top"] == "kept" and list(after) == ["records", "detected_connector_records", "future_top"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_upsert_updates_our_record_in_place_of_the_old_and_moves_it_last(home: Path) -> None:
    raw = json.loads(CODEX_WRITTEN)
    first = raw["records"][0]
    first["connector_names"] = ["Linear"]
    first["future_field"] = 7
    ledger_file(home).write_bytes(codex_ledger.encode(raw))
    codex_ledger.upsert(home, record(first["source_path"], thread=first["imported_thread_id"], sha="cd" * 32))
    after = json.loads(ledger_file(home).read_bytes())["records"]
    assert [r["imported_thread_id"] for r in after] == [raw["records"][1]["imported_thread_id"],
                                                       first["imported_thread_id"]]
    assert after[1]["content_sha256"] == "cd" * 32
    assert after[1]["connector_names"] == ["Linear"] and after[1]["future_field"] == 7
    assert list(after[1])[:7] == list(first)[:7]  # Codex's key order kept


def test_upsert_of_the_same_record_writes_nothing(home: Path) -> None:
    codex_ledger.upsert(home, record("/src/a.jsonl"))
    before = ledger_file(home).stat()
    codex_ledger.upsert(home, record("/src/a.jsonl"))
    assert ledger_file(home).stat().st_ino == before.st_ino  # not replaced


def _merge_one_by_one(raw: dict, records: list[ImportRecord]) -> dict:
    """The rule merge implements, spelled out: per record, take out the last one with its (path,
    thread), put it at the end with our fields over its own (an empty connector list keeps Codex's)."""
    items = list(raw.get("records", []))
    for rec in records:
        fields = msgspec.to_builtins(rec)
        for i in range(len(items) - 1, -1, -1):
            old = items[i]
            if (isinstance(old, dict) and old.get("source_path") == rec.source_path
                    and old.get("imported_thread_id") == rec.imported_thread_id):
                del items[i]
                fields = {**old, **{k: v for k, v in fields.items()
                                    if not (k == "connector_names" and not v and old.get(k))}}
                break
        items.append(fields)
    return {**raw, "records": items, "detected_connector_records": raw.get("detected_connector_records", [])}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["/a", "/b", "/c"]), st.sampled_from(["t1", "t2"]), st.booleans()),
                max_size=8),
       st.lists(st.tuples(st.sampled_from(["/a", "/b", "/c", "/d"]), st.sampled_from(["t1", "t2", "t3"])),
                max_size=8))
def test_merge_is_the_one_by_one_rule(existing, ours) -> None:
    """merge is linear (an index of the last record per key), and gives what upserting one by one gives:
    duplicates in the file, records of Codex's with connector names and unknown fields, odd entries."""
    raw = {"records": [{"source_path": p, "imported_thread_id": t, "content_sha256": "x", "imported_at": 1,
                        "connector_names": ["c"] if keep else [], "extra": i} for i, (p, t, keep) in enumerate(existing)]
           + ["not a record", {"source_path": ["/a"], "imported_thread_id": "t1"}]}
    records = [record(p, thread=t, sha=f"{i:064x}") for i, (p, t) in enumerate(ours)]
    assert codex_ledger.merge(raw, records) == _merge_one_by_one(raw, records)


def test_upsert_never_writes_over_a_file_that_does_not_parse(home: Path) -> None:
    ledger_file(home).write_bytes(b'{"records": [')
    with pytest.raises(CodexLedgerError) as err:
        codex_ledger.upsert(home, record("/src/a.jsonl"))
    assert str(ledger_file(home)) in str(err.value) and "\n" not in str(err.value)
    assert ledger_file(home).read_bytes() == b'{"records": ['


def test_a_read_caught_mid_write_is_retried_once(home: Path) -> None:
    path = ledger_file(home)
    path.write_bytes(b"")  # what Codex's fs::write leaves between its truncate and its write

    def finish() -> None:
        time.sleep(codex_ledger.RETRY_DELAY_S / 5)
        path.write_bytes(CODEX_WRITTEN)

    writer = threading.Thread(target=finish)
    writer.start()
    snap = codex_ledger.read(home)
    writer.join()
    assert len(snap.ledger.records) == 2


def test_find_matches_the_canonical_path(home: Path, tmp_path: Path) -> None:
    src = tmp_path / "real" / "s.jsonl"
    src.parent.mkdir()
    src.write_bytes(b"{}\n")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    codex_ledger.upsert(home, record(str(src.resolve())))
    assert [r.source_path for r in codex_ledger.find(home, tmp_path / "link" / "s.jsonl")] == [str(src.resolve())]
    assert codex_ledger.find(home, tmp_path / "other.jsonl") == []


def codex_like_writer(home: Path, stop: threading.Event, written: list[str]) -> None:
    """What Codex's importer does: load, push a record, fs::write (truncate + write, no rename)."""
    path = ledger_file(home)
    n = 0
    while not stop.is_set():
        raw = codex_ledger.read(home).raw
        n += 1
        tid = f"codex-{n}"
        raw.setdefault("records", []).append(msgspec.to_builtins(record(f"/codex/{n}.jsonl", thread=tid)))
        with open(path, "wb") as f:  # O_TRUNC, then write: a reader can see it empty or half-written
            f.write(codex_ledger.encode(raw))
        written.append(tid)
        time.sleep(0.02)  # far more often than Codex (once per import batch and per touched detect)


def _upsert_stopped_before_install(home: Path, ours: ImportRecord, while_stopped: Callable[[], None],
                                   after_continue: Callable[[], None] = lambda: None) -> None:
    """`upsert(ours)` in a real process that stops (SIGSTOP) once, right before its merged ledger goes in
    place: Codex's write that lands at that moment is `while_stopped`, the rest of it `after_continue`."""
    code = ("import sys, msgspec; from pathlib import Path; from daemon.codex import codex_ledger; "
            "codex_ledger.upsert(Path(sys.argv[1]), msgspec.json.decode(sys.argv[2], type=codex_ledger.ImportRecord))")
    fired = home.parent / "fired"
    env = {**os.environ, "SESSION_SYNCD_FAULT": "codex_ledger.before_install:stop",
           "SESSION_SYNCD_FAULT_ONCE": str(fired)}
    proc = subprocess.Popen([sys.executable, "-c", code, str(home), msgspec.json.encode(ours).decode()],
                            cwd=REPO, env=env, stderr=subprocess.PIPE)
    try:
        wait_stopped_at(proc, fired, "codex_ledger.before_install")
        while_stopped()
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    after_continue()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()


def _codex_view(*records: ImportRecord) -> bytes:
    """What Codex's importer writes after loading CODEX_WRITTEN and pushing `records`."""
    raw = json.loads(CODEX_WRITTEN)
    raw["records"] += [msgspec.to_builtins(r) for r in records]
    return codex_ledger.encode(raw)


def test_a_ledger_codex_creates_while_we_create_ours_keeps_its_records(home: Path) -> None:
    """No file when we looked; Codex's fs::write creates one before ours goes in place. A rename would
    replace it unseen (no old file to read Codex's records back from): we see it and merge again."""
    codex = record("/codex/first.jsonl", thread="codex-first")
    _upsert_stopped_before_install(home, record("/ours/a.jsonl", thread="ours-a"),
                                   lambda: ledger_file(home).write_bytes(_codex_view(codex)))
    ids = [r.imported_thread_id for r in codex_ledger.read(home).ledger.records]
    assert sorted(ids) == sorted([*(r.imported_thread_id for r in codex_ledger.parse(CODEX_WRITTEN)[1].records),
                                  "codex-first", "ours-a"])


def test_a_codex_write_slow_to_land_in_the_file_we_replaced_is_waited_for(home: Path) -> None:
    """Codex truncated the file (its fs::write opened it) just before our rename and writes its view
    into the old file a while later: we wait for that write and fold its records in."""
    ledger_file(home).write_bytes(CODEX_WRITTEN)
    old = ledger_file(home).open("r+b")
    try:
        def land_later() -> None:
            time.sleep(10 * codex_ledger.RETRY_DELAY_S)  # longer than one wait, well under all of them
            old.write(_codex_view(record("/codex/late.jsonl", thread="codex-late")))
            old.flush()

        _upsert_stopped_before_install(home, record("/ours/a.jsonl", thread="ours-a"),
                                       lambda: old.truncate(0), land_later)
    finally:
        old.close()
    ids = {r.imported_thread_id for r in codex_ledger.read(home).ledger.records}
    assert {"codex-late", "ours-a"} <= ids and len(ids) == 4


def test_concurrent_codex_style_writer_loses_nothing_of_codex(home: Path) -> None:
    stop = threading.Event()
    codex_written: list[str] = []
    writer = threading.Thread(target=codex_like_writer, args=(home, stop, codex_written))
    writer.start()
    ours: list[ImportRecord] = []
    gave_up = 0
    try:
        while len(codex_written) < 30 and len(ours) < 2000:  # until the writer has really run alongside
            ours.append(record(f"/ours/{len(ours)}.jsonl", thread=f"ours-{len(ours)}"))
            try:
                codex_ledger.upsert(home, ours[-1])
            except CodexLedgerError:
                gave_up += 1  # "kept changing": nothing written, retried by the caller's next pass
    finally:
        stop.set()
        writer.join()
    # Codex may have written a view it loaded before our rename: our reconcile re-upserts.
    codex_ledger.upsert_all(home, ours)
    ids = [r.imported_thread_id for r in codex_ledger.read(home).ledger.records]
    assert len(codex_written) >= 30
    assert set(codex_written) <= set(ids), "a record Codex wrote went missing"
    assert {r.imported_thread_id for r in ours} <= set(ids)
    assert len(ids) == len(set(ids))
    assert gave_up < len(ours) // 2


# -- the mirror's sha256 ---------------------------------------------------------------------------

def test_tracker_hashes_only_new_bytes_and_agrees_with_hashlib(tmp_path: Path) -> None:
    src = tmp_path / "s.jsonl"
    src.write_bytes(b'{"a": 1}\n' * 100_000)
    tracker = mirror.Sha256Tracker()
    first = tracker.digest(src)
    assert first.sha256 == hashlib.sha256(src.read_bytes()).hexdigest() and first.size == src.stat().st_size
    assert tracker.bytes_hashed == first.size
    with src.open("ab") as f:
        f.write(b'{"b": 2}\n' * 3)
    second = tracker.digest(src)
    assert second.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    assert tracker.bytes_hashed == first.size + 27  # O(new bytes)
    assert second.mtime_ns == src.stat().st_mtime_ns


def test_a_seeded_digest_is_used_until_the_file_changes(tmp_path: Path) -> None:
    """A worker that read the file whole hands its sha256 over: the flush reads nothing of that file, and
    any change (growth, a touch, another inode) falls back to hashing it."""
    src = tmp_path / "s.jsonl"
    src.write_bytes(b'{"a": 1}\n' * 1000)
    st = src.stat()
    right = hashlib.sha256(src.read_bytes()).hexdigest()
    queue = mirror.MirrorQueue(tmp_path / "codex")
    queue.add("claude", str(src), "t1", None, True, (mirror.SourceDigest(right, st.st_size, st.st_mtime_ns), st.st_ino))
    tracker = queue.tracker
    assert tracker.digest(src).sha256 == right and tracker.bytes_hashed == 0
    assert queue.take()[str(src)] == ("t1", None, False)  # the digest is of the rewritten file already
    with src.open("ab") as f:
        f.write(b'{"b": 2}\n')
    assert tracker.digest(src).sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    assert tracker.bytes_hashed == src.stat().st_size  # no state to resume: hashed once from the start
    tracker.seed(src, mirror.SourceDigest("0" * 64, st.st_size, st.st_mtime_ns), st.st_ino)  # stale
    assert tracker.digest(src).sha256 == hashlib.sha256(src.read_bytes()).hexdigest()


@pytest.mark.parametrize("change", ["rewrite_tail", "shrink", "replace_inode", "flag"])
def test_tracker_rehashes_whole_file_when_the_prefix_changed(tmp_path: Path, change: str) -> None:
    src = tmp_path / "s.jsonl"
    src.write_bytes(b"x" * 10_000 + b"\n")
    tracker = mirror.Sha256Tracker()
    tracker.digest(src)
    rewritten = False
    if change == "rewrite_tail":
        src.write_bytes(b"x" * 9_990 + b"y" * 10 + b"\nmore\n")
    elif change == "shrink":
        src.write_bytes(b"x" * 100 + b"\n")
    elif change == "replace_inode":
        other = tmp_path / "other"
        other.write_bytes(b"x" * 10_000 + b"\nappended\n")
        os.replace(other, src)
    else:
        with src.open("ab") as f:
            f.write(b"z\n")
        rewritten = True
    got = tracker.digest(src, rewritten=rewritten)
    assert got.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()


def test_tracker_is_bounded(tmp_path: Path) -> None:
    tracker = mirror.Sha256Tracker(max_entries=2)
    for i in range(3):
        (tmp_path / f"{i}").write_bytes(b"a\n")
        tracker.digest(tmp_path / f"{i}")
    before = tracker.bytes_hashed
    tracker.digest(tmp_path / "0")  # evicted: hashed again
    assert tracker.bytes_hashed == before + 2


def test_a_flush_hashes_none_of_the_files_whose_digest_it_was_handed(tmp_path: Path, home: Path) -> None:
    """More sessions committed between two flushes than the tracker keeps states: the digests the
    workers handed over are still all there at the flush, which reads none of those files again."""
    queue = mirror.MirrorQueue(home, tracker=mirror.Sha256Tracker(max_entries=4))
    expected = {}
    for i in range(25):
        src = tmp_path / f"s{i}.jsonl"
        src.write_bytes(b'{"n": %d}\n' % i)
        st = src.stat()
        expected[str(src.resolve())] = digest = hashlib.sha256(src.read_bytes()).hexdigest()
        queue.add("claude", str(src), f"t{i}", None, True, (mirror.SourceDigest(digest, st.st_size, st.st_mtime_ns),
                                                             st.st_ino))
    assert queue.write(queue.take()) == []
    assert queue.tracker.bytes_hashed == 0
    records = codex_ledger.read(home).ledger.records
    assert {r.source_path: r.content_sha256 for r in records} == expected


def test_imported_prefix_finds_where_codexs_import_ends(tmp_path: Path) -> None:
    src = tmp_path / "s.jsonl"
    imported = b'{"type":"user"}\n' * 5000 + b'{"type":"assistant"}\n'
    src.write_bytes(imported)
    sha = hashlib.sha256(imported).hexdigest()
    with src.open("ab") as f:
        f.write(b'{"type":"user","n":2}\n' * 3 + b'{"partial":')
    assert mirror.imported_prefix(src, sha) == len(imported)
    src.write_bytes(b"rewritten\n" + imported)
    assert mirror.imported_prefix(src, sha) is None
    src.write_bytes(b"no newline")
    assert mirror.imported_prefix(src, hashlib.sha256(b"no newline").hexdigest()) == len(b"no newline")


def test_mirror_session_writes_the_record_codex_needs(home: Path, tmp_path: Path) -> None:
    src = tmp_path / "s.jsonl"
    src.write_bytes(b'{"type":"user"}\n')
    tracker = mirror.Sha256Tracker()
    rec = mirror.mirror_session(home, tracker, src, "tid-1", "a title", now=1796190000)
    assert rec == ImportRecord(source_path=str(src.resolve()), content_sha256=hashlib.sha256(src.read_bytes()).hexdigest(),
                               imported_thread_id="tid-1", imported_at=1796190000,
                               source_modified_at=src.stat().st_mtime_ns, connector_names=[], title="a title")
    assert codex_ledger.find(home, src) == [rec]
    assert mirror.adoptable([rec]) == rec and mirror.adoptable([rec, rec]) is None and mirror.adoptable([]) is None


def test_canonical_with_a_folder_memo_is_canonical(tmp_path: Path) -> None:
    """The memo changes the cost, never the answer: a plain file, a file that is a link, a file in a
    linked folder, a missing file (as given), and a folder that became a link is seen once the memo is
    started over (it holds at most FOLDERS_MEMO folders)."""
    real = tmp_path / "real"
    real.mkdir()
    (real / "s.jsonl").write_text("{}\n")
    (tmp_path / "linked").symlink_to(real)
    (real / "l.jsonl").symlink_to(real / "s.jsonl")
    folders: dict[str, str] = {}
    for path in (real / "s.jsonl", tmp_path / "linked" / "s.jsonl", real / "l.jsonl", real / "gone.jsonl",
                 tmp_path / "linked" / "gone.jsonl"):
        assert codex_ledger.canonical(path, folders) == codex_ledger.canonical(path), path
    assert codex_ledger.canonical(tmp_path / "linked" / "s.jsonl", folders) == str(real / "s.jsonl")
    assert str(tmp_path / "linked") in folders  # the second call for that folder walked nothing
