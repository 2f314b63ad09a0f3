"""engine.sync_session on real files: which path each kind of change takes, and what it reads."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from daemon.engine import Job, Outcome, sync_session
from daemon.record import record
from daemon.ledger import Ledger
from daemon.sources import SOURCES


class Quiet:
    def __getattr__(self, _name: str):
        return lambda *a, **k: None


def line(kind: str, text: str, cwd: Path, i: int) -> bytes:
    content = text if kind == "user" else [{"type": "text", "text": text}]
    return json.dumps({"type": kind, "cwd": str(cwd), "timestamp": f"2026-11-01T10:00:{i:02d}.000Z",
                       "message": {"role": kind, "content": content}}).encode() + b"\n"


@pytest.fixture
def env(tmp_path: Path):
    cwd = tmp_path / "repo"
    cwd.mkdir()
    root = tmp_path / "projects"
    src = root / "-repo" / "s1.jsonl"
    src.parent.mkdir(parents=True)
    src.write_bytes(b"".join(line(k, f"{k} {i} " + "z" * 200_000, cwd, i)
                             for i in range(3) for k in ("user", "assistant")))
    ledger = Ledger(tmp_path / "ledger.sqlite3")

    def sync() -> Outcome:
        ident = SOURCES["claude"].identify(root, src)
        out = sync_session(Job(ident, ledger.get("claude", src.stem), tmp_path / "codex", ledger.path))
        record(ledger, out, Quiet())
        return out

    yield src, cwd, sync
    ledger.close()


def test_append_reads_only_the_new_bytes(env) -> None:
    src, cwd, sync = env
    assert sync().kind == "imported"
    added = line("user", "one more", cwd, 10) + line("assistant", "ok", cwd, 11)
    with src.open("ab") as f:
        f.write(added)
    out = sync()
    assert (out.kind, out.bytes_read, out.new_turns) == ("appended", len(added), 1)


def test_append_by_rename_is_still_an_append(env) -> None:
    src, cwd, sync = env
    sync()
    tmp = src.with_suffix(".new")
    tmp.write_bytes(src.read_bytes() + line("user", "renamed in", cwd, 12))
    os.replace(tmp, src)  # a new inode, the same bytes plus more
    assert sync().kind == "appended"


def test_touch_is_hashed_whole_and_changes_nothing(env) -> None:
    src, _cwd, sync = env
    first = sync()
    os.utime(src, ns=(0, 1_000_000_000))
    out = sync()
    assert (out.kind, out.bytes_read) == ("touched", src.stat().st_size)
    assert out.row is not None and out.row.thread_id == first.row.thread_id
    assert sync().kind == "unchanged"


def test_same_length_edit_in_the_middle_is_a_rewrite(env) -> None:
    """A redaction deep inside the file (far from both ends), same length: the thread must follow."""
    src, _cwd, sync = env
    sync()
    data = src.read_bytes()
    middle = data.index(b"user 1 ") + len(b"user 1 ")
    src.write_bytes(data[:middle] + b"REDACTED" + data[middle + 8:])
    out = sync()
    assert out.kind == "rewritten"
    assert b"REDACTED" in Path(out.row.rollout_path).read_bytes()


@pytest.mark.parametrize("where", ["head", "tail", "length"])
def test_rewrites_are_detected(env, where: str) -> None:
    src, cwd, sync = env
    thread = sync().row.thread_id
    data = bytearray(src.read_bytes())
    if where == "head":
        data[100:101] = b"Q" if data[100:101] != b"Q" else b"R"  # same length, first bytes differ
    elif where == "tail":
        data[-200:-199] = b"Q" if data[-200:-199] != b"Q" else b"R"  # same length, last bytes differ
    else:
        data = data[: len(data) // 2]
        data = data[: data.rfind(b"\n") + 1]  # a compaction: fewer lines
    src.write_bytes(bytes(data))
    out = sync()
    assert out.kind == "rewritten" and out.row.thread_id == thread
    assert out.bytes_read == len(data)


def test_partial_last_line_waits(env) -> None:
    src, cwd, sync = env
    sync()
    whole = line("user", "half now, half later", cwd, 20)
    with src.open("ab") as f:
        f.write(whole[:20])
    out = sync()
    assert out.kind == "touched" and out.new_turns == 0
    with src.open("ab") as f:
        f.write(whole[20:])
    out = sync()
    assert (out.kind, out.new_turns) == ("appended", 1)


def test_rewrite_to_no_turns_then_growth_replaces_the_thread(env) -> None:
    """A compaction can leave a file with no user message yet; the thread is kept as it was, and the
    next version of the file replaces it whole (never an append onto the old turns)."""
    src, cwd, sync = env
    first = sync()
    src.write_bytes(json.dumps({"type": "summary", "summary": "compacted"}).encode() + b"\n")
    out = sync()
    assert (out.kind, out.row) == ("pending", None)
    with src.open("ab") as f:
        f.write(line("user", "after compaction", cwd, 30))
    out = sync()
    assert out.kind == "rewritten" and out.row.thread_id == first.row.thread_id
    text = Path(out.row.rollout_path).read_text()
    assert text.count("<EXTERNAL SESSION IMPORTED>") == 1 and text.count('"task_started"') == 1


def test_session_without_timestamps_keeps_its_thread_across_a_crash(tmp_path: Path) -> None:
    """Cursor lines carry no time; the start (thread id, rollout path) comes from the file's mtime,
    which moves as the file grows. A crash between the write and the commit must not move it."""
    home = tmp_path / "home"
    project = home / ".cursor" / "projects" / "repo"
    (tmp_path / "repo").mkdir()
    src = project / "agent-transcripts" / "c1" / "c1.jsonl"
    src.parent.mkdir(parents=True)
    rec = {"role": "user", "cwd": str(tmp_path / "repo"),
           "message": {"content": [{"type": "text", "text": "<user_query>hi</user_query>"}]}}
    src.write_text(json.dumps(rec) + "\n")
    os.utime(src, (1_700_000_000, 1_700_000_000))
    root = home / ".cursor" / "projects"
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    try:
        def job() -> Job:
            ident = SOURCES["cursor"].identify(root, src)
            return Job(ident, ledger.get("cursor", src.stem), tmp_path / "codex", ledger.path)

        crashed = sync_session(job())  # written, never committed: the crash
        assert crashed.kind == "imported"
        with src.open("a") as f:
            f.write(json.dumps(rec) + "\n")
        os.utime(src, (1_800_000_000, 1_800_000_000))
        again = sync_session(job())
        record(ledger, again, Quiet())
        assert again.row.thread_id == crashed.row.thread_id
        assert again.row.rollout_path == crashed.row.rollout_path
        assert len(list((tmp_path / "codex").rglob("rollout-*.jsonl"))) == 1
    finally:
        ledger.close()


@pytest.mark.parametrize("chunk", [64, 4096, 300_000])
def test_chunked_reading_gives_the_same_thread(env, tmp_path: Path, monkeypatch, chunk: int) -> None:
    """Lines longer than a chunk, lines cut by chunk ends, the tail re-read: same bytes, same hash (the
    content hash of a whole read: blake3 over each full block's blake3, the last partial block's and the
    length)."""
    import blake3

    from daemon import engine

    src, _cwd, sync = env
    whole = sync()
    rollout = Path(whole.row.rollout_path).read_bytes()
    monkeypatch.setattr(engine, "CHUNK", chunk)
    ident = SOURCES["claude"].identify(src.parent.parent, src)
    out = sync_session(Job(ident, None, tmp_path / "codex-chunked", tmp_path / "other.sqlite3"))
    assert Path(out.row.rollout_path).read_bytes() == rollout
    data, block = src.read_bytes(), engine.BLOCK
    assert len(data) > block  # full blocks and a partial one
    full = len(data) // block * block
    tree = blake3.blake3(b"".join(blake3.blake3(data[at:at + block]).digest() for at in range(0, full, block)))
    tree.update(blake3.blake3(data[full:]).digest() + len(data).to_bytes(8, "little"))
    assert out.row.content_hash == tree.digest() == whole.row.content_hash


@pytest.mark.parametrize("unfinished", [False, True])
@pytest.mark.parametrize("chunk", [64, 300_000, 8 << 20])
def test_the_fold_pass_gives_the_fingerprint_and_sha256_a_second_read_would(env, tmp_path: Path, monkeypatch,
                                                                           chunk: int, unfinished: bool) -> None:
    """Block digests, the ends and Codex's sha256 come from the bytes the fold read (each byte read once):
    equal to what reading the file again gives, whatever the chunking (chunks smaller than a block, not
    aligned), and when the file ends in a line still being written (the fingerprint covers less than was
    read)."""
    import hashlib

    from daemon import engine

    src, _cwd, _sync = env
    if unfinished:
        with src.open("ab") as f:
            f.write(b'{"type": "user", "message": {"content": "half a li')
    monkeypatch.setattr(engine, "CHUNK", chunk)
    ident = SOURCES["claude"].identify(src.parent.parent, src)
    out = sync_session(Job(ident, None, tmp_path / "codex-pass", tmp_path / "pass.sqlite3", sha256=True))
    fd = os.open(src, os.O_RDONLY)
    try:
        again = engine.prefix_fingerprint(fd, out.row.consumed, ctime_ns=os.fstat(fd).st_ctime_ns)
    finally:
        os.close(fd)
    assert len(again) > engine._FP_HEAD + 32  # several blocks
    assert (out.row.consumed < src.stat().st_size) is unfinished
    assert out.row.prefix_hash == again
    assert out.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    assert sync_session(Job(ident, None, tmp_path / "codex-nosha", tmp_path / "nosha.sqlite3")).sha256 is None


def test_a_line_longer_than_a_chunk_is_read_in_growing_reads(tmp_path: Path, monkeypatch) -> None:
    """A 4 MiB line with 64 KiB chunks: each read takes as much again as is carried, so the line costs a
    handful of folds (the carried bytes are copied and scanned each time), not one per chunk (64)."""
    from daemon import engine

    cwd = tmp_path / "repo"
    cwd.mkdir()
    src = tmp_path / "projects" / "-repo" / "long.jsonl"
    src.parent.mkdir(parents=True)
    src.write_bytes(line("user", "y" * (4 << 20), cwd, 1) + line("assistant", "ok", cwd, 2))
    folds = []
    real_fold = engine.fold
    monkeypatch.setattr(engine, "CHUNK", 64 << 10)
    monkeypatch.setattr(engine, "fold", lambda *a, **k: folds.append(len(a[2])) or real_fold(*a, **k))
    ident = SOURCES["claude"].identify(src.parent.parent, src)
    out = sync_session(Job(ident, None, tmp_path / "codex", tmp_path / "ledger.sqlite3"))
    assert (out.kind, out.new_turns) == ("imported", 1)
    assert 6 <= len(folds) <= 9, folds  # 64 KiB, then 64, 128, 256 … KiB more: doubling up to 4 MiB
    assert "y" * 1000 in Path(out.row.rollout_path).read_text()


def _foreign_turn() -> bytes:
    line = {"timestamp": "2026-11-02T10:00:05.000Z", "type": "response_item",
            "payload": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "mine"}]}}
    return json.dumps(line).encode() + b"\n"


def _imported_then_appended(env) -> Path:
    """Import the session, append a turn, sync it: the rollout."""
    src, cwd, sync = env
    sync()
    with src.open("ab") as f:
        f.write(line("user", "more", cwd, 40))
    out = sync()
    assert out.kind == "appended"
    return Path(out.row.rollout_path)


def test_touch_after_an_append_rewrites_nothing(env) -> None:
    src, _cwd, sync = env
    rollout = _imported_then_appended(env)
    before = rollout.read_bytes()
    os.utime(src, ns=(0, 2_000_000_000))
    assert sync().kind == "touched"
    assert rollout.read_bytes() == before


def test_touch_after_codex_continued_the_thread_is_no_conflict(env) -> None:
    src, _cwd, sync = env
    rollout = _imported_then_appended(env)
    with rollout.open("ab") as f:
        f.write(_foreign_turn())
    os.utime(src, ns=(0, 2_000_000_000))
    out = sync()
    assert (out.kind, out.superseded) == ("touched", None)


def test_a_lost_ledger_adopts_our_rollout_and_keeps_a_continued_one(env, tmp_path: Path) -> None:
    src, _cwd, sync = env
    first = sync()
    rollout = Path(first.row.rollout_path)
    ident = SOURCES["claude"].identify(src.parent.parent, src)

    def fresh(name: str) -> Outcome:  # a new, empty ledger: the old one was lost or moved aside
        return sync_session(Job(ident, None, tmp_path / "codex", tmp_path / name))

    again = fresh("new1.sqlite3")
    assert (again.kind, again.row.thread_id) == ("imported", first.row.thread_id)
    with rollout.open("ab") as f:
        f.write(_foreign_turn())
    theirs = rollout.read_bytes()
    out = fresh("new2.sqlite3")
    assert out.kind == "conflict" and out.row.thread_id != first.row.thread_id
    assert rollout.read_bytes() == theirs
    assert len(list((tmp_path / "codex").rglob("rollout-*.jsonl"))) == 2


def test_a_fifo_is_skipped_not_waited_on(env) -> None:
    src, _cwd, _sync = env
    fifo = src.with_name("pipe.jsonl")
    os.mkfifo(fifo)
    ident = SOURCES["claude"].identify(src.parent.parent, fifo)
    out = sync_session(Job(ident, None, src.parent / "codex", src.parent / "l.sqlite3"))
    assert out.kind == "skipped" and "not a regular file" in out.message
