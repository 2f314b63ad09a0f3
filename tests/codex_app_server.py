"""Drive the real `codex app-server` (JSON-RPC 2.0 over stdio) from tests.

Why: our parity and visibility tests must be judged by the real Codex binary,
not by our reading of its source. This helper is synchronous on purpose (no trio
in tests that only talk to a subprocess) and keeps Codex offline and isolated:
HOME and CODEX_HOME point at temp dirs and the environment is scrubbed of
anything that could reach a real account.

Usage::

    with CodexAppServer(home=tmp / "home", codex_home=tmp / "codex") as codex:
        items = codex.detect()                      # Claude Code sessions
        codex.import_sessions(items)                # waits for .../import/completed
        for t in codex.list_threads():
            print(t["id"], t["name"], codex.read_thread(t["id"])["turns"])
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

ENV_VAR = "SESSION_SYNCD_CODEX_BIN"
#: Every Codex binary the multi-version tests run against, os.pathsep-separated (`make test` sets the
#: pinned one and the newest release). Unset: $SESSION_SYNCD_CODEX_BIN plus every
#: .codex-cli/<version>/node_modules/.bin/codex installed in this checkout.
BINS_ENV_VAR = "SESSION_SYNCD_CODEX_BINS"
REPO = Path(__file__).resolve().parent.parent

#: Every thread source kind `thread/list` knows (schema `ThreadSourceKind`,
#: Codex 0.169.0). Passing them all lists every thread; omitting `sourceKinds`
#: lists only the interactive ones ("cli", "vscode").
ALL_SOURCE_KINDS: tuple[str, ...] = (
    "cli",
    "vscode",
    "exec",
    "appServer",
    "subAgent",
    "subAgentReview",
    "subAgentCompact",
    "subAgentThreadSpawn",
    "subAgentOther",
    "unknown",
)

JsonObj = dict[str, Any]


def codex_bin() -> str | None:
    """The Codex binary from $SESSION_SYNCD_CODEX_BIN, or None when unset/missing."""
    value = os.environ.get(ENV_VAR)
    if not value:
        return None
    path = Path(value)
    return str(path) if path.is_file() and os.access(path, os.X_OK) else None


def require_codex_bin() -> str:
    """Like codex_bin() but fail loudly: tests must not silently skip parity checks."""
    found = codex_bin()
    if found is None:
        raise RuntimeError(
            f"real Codex CLI not found: set {ENV_VAR} to the `codex` binary "
            f"(currently {os.environ.get(ENV_VAR)!r}); `make test` installs it into .codex-cli"
        )
    return found


def codex_version(binary: str) -> str:
    """`codex --version` → "0.171.0" (raises if the binary does not answer like a Codex CLI)."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=60, check=True).stdout
    words = out.split()
    if len(words) < 2 or words[0] != "codex-cli":
        raise RuntimeError(f"{binary} --version printed {out!r}, not `codex-cli <version>`")
    return words[1]


def codex_bins() -> dict[str, str]:
    """{version: binary} for every Codex the multi-version tests use (see BINS_ENV_VAR), sorted by version."""
    listed = os.environ.get(BINS_ENV_VAR)
    if listed:
        candidates = [p for p in listed.split(os.pathsep) if p]
    else:
        candidates = [p for p in [os.environ.get(ENV_VAR, "")] if p]
        candidates += sorted(str(p) for p in (REPO / ".codex-cli").glob("*/node_modules/.bin/codex"))
    found: dict[str, str] = {}
    for cand in candidates:
        path = Path(cand)
        if not (path.is_file() and os.access(path, os.X_OK)):
            if listed:
                raise RuntimeError(f"{BINS_ENV_VAR} names {cand}, which is not an executable; run `make test`")
            continue
        found.setdefault(codex_version(str(path)), os.path.abspath(path))
    return dict(sorted(found.items(), key=lambda kv: tuple(int(x) for x in kv[0].split(".") if x.isdigit())))


def codex_bin_params(minimum: int = 2) -> list[Any]:
    """pytest params (id = version) over codex_bins(), for `@pytest.mark.parametrize("codex_bin", ...)`.

    Fewer than `minimum` versions → one param that fails the test with what to install: a
    multi-version test must never pass by quietly running against one Codex.
    """
    import pytest

    try:
        bins = codex_bins()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        return [pytest.param(f"!{exc}", id="codex-missing")]
    if len(bins) < minimum:
        why = (f"!the multi-version tests need {minimum} Codex versions, found {sorted(bins) or 'none'}: "
               f"run `make test` (it installs them into .codex-cli/) or set {BINS_ENV_VAR}")
        return [pytest.param(why, id="codex-missing")]
    return [pytest.param(binary, id=f"codex-{version}") for version, binary in bins.items()]


def offline_env(home: Path, codex_home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A minimal environment: no API keys, no proxies, no user config leak, fixed TZ.

    TZ=UTC because Codex names rollout folders/files by *local* time.
    """
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "CODEX_HOME": str(codex_home),
        "TZ": "UTC",
        "LANG": "C.UTF-8",
        "RUST_LOG": "error",
        "NO_COLOR": "1",
        "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
    }
    if extra:
        env.update(extra)
    return env


class CodexRpcError(RuntimeError):
    """A JSON-RPC error response (keeps code/message/data for assertions)."""

    def __init__(self, method: str, error: JsonObj) -> None:
        self.method = method
        self.code = error.get("code")
        self.error_message = error.get("message")
        self.data = error.get("data")
        super().__init__(f"{method}: JSON-RPC error {self.code}: {self.error_message} {self.data or ''}")


class CodexAppServer:
    """One `codex app-server` child process, initialised and ready for requests."""

    def __init__(
        self,
        home: Path | str,
        codex_home: Path | str,
        *,
        binary: str | None = None,
        timeout: float = 30.0,
        env: dict[str, str] | None = None,
        cwd: Path | str | None = None,
    ) -> None:
        self.home = Path(home)
        self.codex_home = Path(codex_home)
        if binary is not None and binary.startswith("!"):
            raise RuntimeError(binary[1:])  # a codex_bin_params() placeholder: say what is missing
        self.binary = binary or require_codex_bin()
        self.timeout = timeout
        self._extra_env = env
        self._cwd = Path(cwd) if cwd else self.home
        self._proc: subprocess.Popen[bytes] | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, queue.Queue[JsonObj]] = {}
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._write_lock = threading.Lock()
        self.notifications: list[JsonObj] = []  # every notification, in arrival order
        self._stderr_tail: list[str] = []
        self._threads: list[threading.Thread] = []

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> CodexAppServer:
        """Spawn the server and do the `initialize` / `initialized` handshake."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.codex_home.mkdir(parents=True, exist_ok=True)
        self._proc = subprocess.Popen(
            [self.binary, "app-server"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=offline_env(self.home, self.codex_home, self._extra_env),
            cwd=self._cwd,
        )
        for target in (self._read_stdout, self._read_stderr):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self._threads.append(t)
        self.initialize_result = self.request(
            "initialize",
            {"clientInfo": {"name": "session-syncd-tests", "title": None, "version": "0"}},
        )
        self.notify("initialized")
        return self

    def close(self, timeout: float = 10.0) -> None:
        """Close stdin (the server exits on EOF); kill only if it does not."""
        proc = self._proc
        if proc is None:
            return
        self._proc = None
        try:
            if proc.stdin:
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
        for t in self._threads:
            t.join(timeout=2)

    def __enter__(self) -> CodexAppServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def stderr(self) -> str:
        """Last lines of the server's stderr (for failure messages)."""
        with self._lock:
            return "".join(self._stderr_tail)

    # -- transport -----------------------------------------------------------------
    def _send(self, message: JsonObj) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise RuntimeError("codex app-server is not running")
        with self._write_lock:
            proc.stdin.write(json.dumps(message).encode() + b"\n")
            proc.stdin.flush()

    def _read_stdout(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        for raw in proc.stdout:
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            if "id" in msg and ("result" in msg or "error" in msg):
                with self._lock:
                    box = self._pending.pop(msg["id"], None)
                if box is not None:
                    box.put(msg)
            elif "id" in msg and "method" in msg:
                # A server->client request (approvals etc.): we never grant anything.
                self._send({"id": msg["id"], "error": {"code": -32601, "message": "not supported by tests"}})
            elif "method" in msg:
                with self._cond:
                    self.notifications.append(msg)
                    self._cond.notify_all()
        with self._cond:  # EOF: wake waiters so they can report a dead server
            self._cond.notify_all()
            for box in self._pending.values():
                box.put({"error": {"code": -1, "message": "codex app-server exited"}})
            self._pending.clear()

    def _read_stderr(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stderr is not None
        for raw in proc.stderr:
            with self._lock:
                self._stderr_tail.append(raw.decode(errors="replace"))
                del self._stderr_tail[:-200]

    def request(self, method: str, params: JsonObj | None = None, timeout: float | None = None) -> Any:
        """Send a request and return its `result`; raise CodexRpcError / TimeoutError."""
        req_id = next(self._ids)
        box: queue.Queue[JsonObj] = queue.Queue(maxsize=1)
        with self._lock:
            self._pending[req_id] = box
        message: JsonObj = {"id": req_id, "method": method}
        if params is not None:
            message["params"] = params
        self._send(message)
        try:
            reply = box.get(timeout=timeout or self.timeout)
        except queue.Empty:
            with self._lock:
                self._pending.pop(req_id, None)
            raise TimeoutError(f"{method}: no reply within {timeout or self.timeout}s\n{self.stderr}") from None
        if "error" in reply:
            raise CodexRpcError(method, reply["error"])
        return reply["result"]

    def notify(self, method: str, params: JsonObj | None = None) -> None:
        """Send a JSON-RPC notification (no reply expected)."""
        message: JsonObj = {"method": method}
        if params is not None:
            message["params"] = params
        self._send(message)

    def wait_notification(
        self,
        method: str,
        predicate: Callable[[JsonObj], bool] | None = None,
        timeout: float | None = None,
        start: int = 0,
    ) -> JsonObj:
        """Return the params of the first notification `method` (from index `start`) matching `predicate`."""
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._cond:
            while True:
                for note in self.notifications[start:]:
                    params = note.get("params") or {}
                    if note["method"] == method and (predicate is None or predicate(params)):
                        return params
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {method} notification within {timeout or self.timeout}s\n{self.stderr}")
                if self._proc is None or self._proc.poll() is not None:
                    raise RuntimeError(f"codex app-server exited while waiting for {method}\n{self.stderr}")
                self._cond.wait(timeout=min(left, 0.5))

    # -- threads -------------------------------------------------------------------
    def list_threads(
        self,
        *,
        source_kinds: Iterable[str] | None = ALL_SOURCE_KINDS,
        model_providers: Iterable[str] | None = (),
        archived: bool | None = None,
        page_size: int = 100,
        **params: Any,
    ) -> list[JsonObj]:
        """Every thread, following `nextCursor`.

        Codex 0.169's defaults hide threads: without `sourceKinds` it lists only
        "cli"/"vscode", and without `modelProviders` only the configured provider
        ("openai"). So by default we send every source kind and `modelProviders: []`
        (= all providers). Pass None for either to get Codex's own default view.
        Quirk seen with 0.169.0: with a non-default `sourceKinds` plus
        `modelProviders: []`, threads whose stored preview is "" (an import whose first
        line is empty) are dropped, so in that case we also merge the
        default-provider view. Other filters (cwd, searchTerm, useStateDbOnly, ...)
        go in **params. Entries are distinct by (id, path): one id can appear twice.
        """
        base: JsonObj = {"limit": page_size, **params}
        if source_kinds is not None:
            base["sourceKinds"] = list(source_kinds)
        if archived is not None:
            base["archived"] = archived
        views = [base]
        if model_providers is not None:
            base["modelProviders"] = list(model_providers)
            if not base["modelProviders"]:
                views.append({k: v for k, v in base.items() if k != "modelProviders"})
        threads: dict[tuple[str, str | None], JsonObj] = {}
        for view in views:
            for t in self._list_pages(view):
                threads.setdefault((t["id"], t.get("path")), t)
        return list(threads.values())

    def _list_pages(self, params: JsonObj) -> list[JsonObj]:
        """One thread/list query, all pages."""
        out: list[JsonObj] = []
        cursor: str | None = None
        while True:
            page = self.request("thread/list", {**params, "cursor": cursor})
            out.extend(page["data"])
            cursor = page.get("nextCursor")
            if not cursor or not page["data"]:
                return out

    def read_thread(self, thread_id: str, include_turns: bool = True) -> JsonObj:
        """`thread/read`; returns the `thread` object (with `turns` when asked)."""
        return self.request("thread/read", {"threadId": thread_id, "includeTurns": include_turns})["thread"]

    # -- Codex's own importer ------------------------------------------------------
    def detect(
        self,
        migration_source: str | None = None,
        *,
        max_sessions: int | None = None,
        max_session_age_days: int | None = None,
        sessions_only: bool = True,
    ) -> list[JsonObj]:
        """`externalAgentConfig/detect` under $HOME; migration_source "cursor" for Cursor.

        With sessions_only, keep only the SESSIONS item (config/skills items would
        import other things into CODEX_HOME).
        """
        params: JsonObj = {"includeHome": True}
        if migration_source is not None:
            params["migrationSource"] = migration_source
        if max_sessions is not None:
            params["maxSessions"] = max_sessions
        if max_session_age_days is not None:
            params["maxSessionAgeDays"] = max_session_age_days
        items: list[JsonObj] = self.request("externalAgentConfig/detect", params)["items"]
        if sessions_only:
            items = [i for i in items if i.get("itemType") == "SESSIONS"]
        return items

    def import_sessions(
        self,
        items: list[JsonObj],
        migration_source: str | None = None,
        timeout: float | None = None,
    ) -> JsonObj:
        """`externalAgentConfig/import`, then wait for its `.../import/completed` notification.

        Returns the completed notification's params ({importId, itemTypeResults}).
        """
        params: JsonObj = {"migrationItems": items}
        if migration_source is not None:
            params["migrationSource"] = migration_source
        with self._lock:
            mark = len(self.notifications)
        import_id = self.request("externalAgentConfig/import", params)["importId"]
        return self.wait_notification(
            "externalAgentConfig/import/completed",
            predicate=lambda p: p.get("importId") == import_id,
            timeout=timeout,
            start=mark,
        )

    def detect_and_import(self, migration_source: str | None = None, **detect_args: Any) -> JsonObj | None:
        """Detect sessions and import them all; None when nothing was detected."""
        items = self.detect(migration_source, **detect_args)
        if not items:
            return None
        return self.import_sessions(items, migration_source)
