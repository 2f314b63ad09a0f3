"""Codex's own import ledger, `$CODEX_HOME/external_agent_session_imports.json`: read, find, upsert.

Owns that file's format — Codex's serde structs field for field (`sessions/ledger.rs`), written the way
`serde_json::to_vec_pretty` writes it (2-space indent, `": "`, raw UTF-8, no trailing newline, the same
key order) — and the one safe way we change it. Codex reads it before every `detect` and refuses to
detect anything when it does not parse, and it rewrites it non-atomically (`fs::write`), so:

* a read that does not parse is retried once (we may have caught Codex mid-write);
* we write through a temp file + fsync + rename, re-read the file right before the rename and merge
  again if it changed, and never write when the current file does not parse;
* every record and every field we do not know (a newer Codex) is kept as it was: records are held as
  the decoded JSON objects and only the typed fields of the record we upsert are replaced.

It knows nothing about sessions or our own ledger (mirror.py decides what a record says).
"""

from __future__ import annotations

import errno
import os
import random
import secrets
import stat
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

from daemon import faults
from daemon.durable import fsync_dir
from daemon.codex.store import write_fix

FILE_NAME = "external_agent_session_imports.json"
#: How long to wait before the one retry of a read that does not parse (Codex's `fs::write` truncates,
#: then writes; a few ms is plenty for a file of a few hundred KiB).
RETRY_DELAY_S = 0.05
#: How many RETRY_DELAY_S waits for Codex to finish a write it began in the file we just replaced (it
#: truncated it, its write has not landed): a second under load, and only when that race happened.
ORPHAN_WAITS = 20
#: Rounds of read-merge-write when the file keeps changing under us before we give up for this pass.
MAX_ROUNDS = 8
#: … and after we displaced a write of Codex's, whose records then exist only in our merge.
MAX_OWED_ROUNDS = 200


class ImportRecord(msgspec.Struct, kw_only=True):
    """`ImportedExternalAgentSessionRecord`: one imported source (Codex's field names and types)."""

    source_path: str  # canonical (realpath) source file
    content_sha256: str  # lower-case hex sha256 of the whole source as imported
    imported_thread_id: str
    imported_at: int  # unix seconds
    source_modified_at: int | None = None  # source mtime, unix nanoseconds
    connector_names: list[str] = []
    title: str | None = None


class ConnectorRecord(msgspec.Struct, kw_only=True):
    """`detected_connector_records[]` (Codex ≥ 0.169): connectors seen in a source."""

    source_path: str
    connector_names: list[str] = []


class ImportLedger(msgspec.Struct, kw_only=True):
    """The whole file. `records` has no serde default in Codex, so it is required here too."""

    records: list[ImportRecord]
    detected_connector_records: list[ConnectorRecord] = []


class CodexLedgerError(Exception):
    """Codex's import ledger cannot be read or written; the message is one line naming the file and the fix."""


class Snapshot(msgspec.Struct, frozen=True):
    """The file as read: its bytes, the decoded objects (for rewriting) and the typed view (for lookups)."""

    data: bytes | None  # None: the file does not exist
    raw: dict[str, Any]
    ledger: ImportLedger


def ledger_path(codex_home: Path) -> Path:
    return codex_home / FILE_NAME


# -- pure core ------------------------------------------------------------------------------------

def parse(data: bytes) -> tuple[dict[str, Any], ImportLedger]:
    """Decode the file's bytes; raise msgspec.DecodeError / ValidationError if Codex would refuse them."""
    raw = msgspec.json.decode(data)
    if not isinstance(raw, dict):
        raise msgspec.ValidationError("expected a JSON object at the top level")
    return raw, msgspec.convert(raw, ImportLedger)


def encode(raw: dict[str, Any]) -> bytes:
    """Bytes as `serde_json::to_vec_pretty` would write them (no trailing newline).

    msgspec's encoding, re-indented by two spaces, matches serde_json for every value Codex writes
    (strings as raw UTF-8 with `"`, `\\` and control characters escaped, the latter as lower-case
    `\\u00XX`; integers of any size; null, lists, objects, empty ones as `[]` / `{}`) and for floats
    too (`1e20`, where Python's json writes `1e+20`). The whole file is rewritten at every flush, so
    this is linear in Codex's ledger: msgspec does it in C (json.dumps with an indent runs in Python:
    1.7 s of a 10,000-session import went to it).
    """
    return msgspec.json.format(msgspec.json.encode(raw), indent=2)


def _record_fields(record: ImportRecord) -> dict[str, Any]:
    return msgspec.to_builtins(record)


def merge(raw: dict[str, Any], records: Iterable[ImportRecord]) -> dict[str, Any]:
    """`raw` with each record upserted, Codex's way: the record for the same (source_path,
    imported_thread_id) is taken out and pushed at the end with our fields over its own (unknown fields
    and `connector_names` Codex found are kept); otherwise the record is appended. Nothing else moves.
    Detect reads "the last record for a path wins", so the one we touch ends last.
    """
    out = dict(raw)
    items: list[Any] = list(out.get("records", []))
    gone = object()  # a record moved to the end leaves this behind (dropped at the end: O(n + m), not O(n·m))
    last: dict[tuple[str, str], int] = {}  # (source_path, imported_thread_id) → index of its last record
    for i, old in enumerate(items):
        if isinstance(old, dict):
            key = (old.get("source_path"), old.get("imported_thread_id"))
            if type(key[0]) is str and type(key[1]) is str:  # only strings can equal our record's
                last[key] = i
    for record in records:
        fields = _record_fields(record)
        key = (record.source_path, record.imported_thread_id)
        i = last.get(key)
        if i is None:
            updated = fields
        else:
            old = items[i]
            items[i] = gone
            updated = dict(old)
            for name, value in fields.items():
                if name == "connector_names" and not value and old.get(name):
                    continue  # Codex's connector scan is not ours to erase
                updated[name] = value
        last[key] = len(items)
        items.append(updated)
    items = [item for item in items if item is not gone]
    out["records"] = items
    if "detected_connector_records" not in out:
        out["detected_connector_records"] = []  # what Codex ≥ 0.169 writes for a new file
    return out


def records_for(ledger: ImportLedger, source_path: str) -> list[ImportRecord]:
    """Every record for this canonical path, in file order (Codex: the last one wins)."""
    return [r for r in ledger.records if r.source_path == source_path]


# -- I/O shell ------------------------------------------------------------------------------------

FOLDERS_MEMO = 4096  # folders a `canonical` memo holds before it starts over


def canonical(source_path: Path | str, folders: dict[str, str] | None = None) -> str:
    """The path as Codex stores it (`fs::canonicalize`); as given (absolute) when it no longer exists.

    `folders`: the caller's memo of folder → canonical folder (MirrorQueue keeps one): a file that is not
    itself a link then costs one lstat, not one per path component (a third of a 2,000-session import's
    time in the committing process went to these walks)."""
    if folders is not None:
        path = os.path.abspath(source_path)
        folder, name = os.path.split(path)
        try:
            if not stat.S_ISLNK(os.lstat(path).st_mode):
                real = folders.get(folder)
                if real is None:
                    if len(folders) >= FOLDERS_MEMO:
                        folders.clear()
                    real = folders[folder] = os.path.realpath(folder, strict=True)
                return os.path.join(real, name)
        except (OSError, RuntimeError):
            pass
    try:
        return str(Path(source_path).resolve(strict=True))
    except (OSError, RuntimeError):  # gone, or a symlink loop: as given
        return str(Path(source_path).absolute())


def _unreadable(path: Path, exc: Exception) -> CodexLedgerError:
    return CodexLedgerError(
        f"Codex's import ledger {path} does not parse ({str(exc).splitlines()[0]}); Codex refuses it too: "
        "fix or move the file aside (Codex starts a new one), nothing was written")


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CodexLedgerError(f"cannot read Codex's import ledger {path}: {exc.strerror}; "
                               "check its permissions") from exc


def _snapshot(path: Path, data: bytes | None) -> Snapshot:
    if data is None:
        return Snapshot(None, {"records": []}, ImportLedger(records=[]))
    raw, ledger = parse(data)
    return Snapshot(data, raw, ledger)


def read(codex_home: Path) -> Snapshot:
    """The ledger as it is now (empty when absent); a parse error is retried once, then raised."""
    path = ledger_path(codex_home)
    data = _read_bytes(path)
    try:
        return _snapshot(path, data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        time.sleep(RETRY_DELAY_S)
    data = _read_bytes(path)
    try:
        return _snapshot(path, data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise _unreadable(path, exc) from exc


def find(codex_home: Path, source_path: Path | str) -> list[ImportRecord]:
    """Codex's record(s) for a source (matched on the canonical path, as Codex does); [] when none."""
    return records_for(read(codex_home).ledger, canonical(source_path))


def upsert(codex_home: Path, record: ImportRecord) -> None:
    """Add or update one record (see merge); durable when this returns."""
    upsert_all(codex_home, [record])


def upsert_all(codex_home: Path, records: list[ImportRecord]) -> None:
    """Add or update records in one read-merge-write.

    Codex may rewrite the file at any moment (its import and a touched-source detect save whatever
    they loaded). We re-read right before the rename and start over if it changed, and after the
    rename check the file we replaced: if Codex's write landed in it after our last read, its records
    are merged into ours in one more round. What this cannot see is Codex writing a view it loaded
    before our rename *after* it — that drops our record (never one of Codex's); callers re-upsert
    when `find` no longer shows it (e.g. on the periodic reconcile).
    """
    if not records:
        return
    path = ledger_path(codex_home)
    snap = read(codex_home)
    owed = False  # we displaced a Codex write: its records exist only in our merge until we write it
    rounds = 0
    while rounds < (MAX_OWED_ROUNDS if owed else MAX_ROUNDS):
        rounds += 1
        new = encode(merge(snap.raw, records))
        if new == snap.data:
            return
        orphan = _write_replacing(path, new, snap.data)
        if orphan is _CHANGED:  # changed before the rename: nothing written, merge again
            time.sleep(random.uniform(0, RETRY_DELAY_S / 10))  # out of step with the other writer
            snap = _carry(read(codex_home), snap, owed)
            continue
        if orphan == snap.data:
            return
        # Codex wrote into the file we replaced after we last read it: fold its view in, once more.
        theirs = _parse_orphan(orphan)
        snap = read(codex_home)
        if theirs is not None:
            snap = Snapshot(snap.data, _union(snap.raw, theirs), snap.ledger)
            owed = True
        elif not owed:
            return  # nothing whole to fold in (see _write_replacing)
    raise CodexLedgerError(f"Codex's import ledger {path} kept changing while we updated it for "
                           f"{rounds} rounds; the update is retried on the next pass")


def _carry(current: Snapshot, previous: Snapshot, owed: bool) -> Snapshot:
    """The fresh read, still carrying the Codex records we owe a write (if any)."""
    if not owed:
        return current
    return Snapshot(current.data, _union(current.raw, previous.raw), current.ledger)


_CHANGED = b"\0changed"


def _parse_orphan(data: bytes | None) -> dict[str, Any] | None:
    """Codex's view from the file we replaced, or None when it is not a whole ledger."""
    if not data:
        return None
    try:
        raw, _ = parse(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return raw


def _key(rec: Any) -> tuple[Any, Any] | None:
    return (rec.get("source_path"), rec.get("imported_thread_id")) if isinstance(rec, dict) else None


def _union(current: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    """`current` with Codex's `theirs` folded in: a record both have (same path and thread) takes
    Codex's newer version in place, one only Codex has is appended, one only `current` has stays."""
    by_key = {_key(r): r for r in theirs.get("records", []) if _key(r) is not None}
    items = [by_key.pop(_key(r), r) if _key(r) is not None else r for r in current.get("records", [])]
    items.extend(r for r in theirs.get("records", []) if _key(r) in by_key)
    out = dict(current)
    out["records"] = items
    return out


def _write_replacing(path: Path, data: bytes, expected: bytes | None) -> bytes | None:
    """Write `data` to `path` by rename if the file still holds `expected`.

    Returns _CHANGED when it changed before the rename (nothing written), else the bytes the replaced
    file held just after the rename (a Codex write racing ours shows up there; `expected` when there
    was no file: then it goes in place only if none appeared meanwhile, see _create). The file keeps
    its mode; a new one is 0600, like every file we create (Codex reads it as the same user).
    """
    tmp = path.with_name(f".{path.name}.session-syncd-{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        old_fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        old_fd = None
    except OSError as exc:
        raise _write_error(path, exc) from exc
    try:
        mode = stat.S_IMODE(os.fstat(old_fd).st_mode) if old_fd is not None else None
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                if mode is not None:
                    os.fchmod(fd, mode)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            if _read_bytes(path) != expected:
                os.unlink(tmp)
                return _CHANGED
            faults.point("codex_ledger.before_install", path)
            if old_fd is not None:
                os.rename(tmp, path)
            elif not _create(tmp, path):
                return _CHANGED
        except OSError as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise _write_error(path, exc) from exc
        fsync_dir(path.parent)
        if old_fd is None:
            return expected
        orphan = _pread_all(old_fd)
        waited = 0
        while orphan != expected and _parse_orphan(orphan) is None and waited < ORPHAN_WAITS:
            time.sleep(RETRY_DELAY_S)  # caught between Codex's truncate and its write: let it finish
            waited += 1
            orphan = _pread_all(old_fd)
        return orphan
    finally:
        if old_fd is not None:
            os.close(old_fd)


def _create(tmp: Path, path: Path) -> bool:
    """Put `tmp` in place as `path` only if there is still no file there; False (tmp removed) if there is.

    A rename would silently replace a file Codex created after our last look, and with it the records
    Codex wrote there (no old inode is left for us to read them back from). A hard link fails instead
    (EEXIST), so we merge again. On a file system without hard links we rename: that window stays open.
    """
    try:
        os.link(tmp, path)
    except FileExistsError:
        os.unlink(tmp)
        return False
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
        os.rename(tmp, path)
        return True
    os.unlink(tmp)
    return True


_NO_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS})


def _pread_all(fd: int) -> bytes:
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _write_error(path: Path, exc: OSError) -> CodexLedgerError:
    fix = write_fix(exc, "Codex's file was not changed")
    return CodexLedgerError(f"cannot update Codex's import ledger {path}: {exc.strerror or exc}; {fix}")
