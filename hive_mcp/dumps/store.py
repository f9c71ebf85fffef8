"""The dump directory: one JSON file per failed call, written atomically and redacted.

Layout: ``<dir>/<id>.json`` (ids in `format`), so listing, filtering and
retention work from file names and ``stat`` alone and only the files that end up
on a page are ever parsed. Temp files start with ``.`` and end with ``.tmp`` so
listing never sees them.

Redaction is one scan of the serialized text (`redact.redact_json`), which covers
every byte that reaches the disk; the structural walk before it only makes the
data JSON-safe and replaces credential-named keys' values (`Authorization`, ...).

This package deliberately imports neither litellm nor mcp: both are slow to import
and the store is needed by the CLI and tests that use neither.
"""

from __future__ import annotations

import bisect
import errno
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..defaults import DEFAULT_PAGE_LIMIT, DUMP_MAX_AGE_DAYS, DUMP_MAX_COUNT, DUMP_MAX_MB, MAX_PAGE_LIMIT, MIB
from ..home import private_dir
from ..listeners import Listeners
from .files import TMP_RE, claim, overwrite, unlink_quiet
from .. import call_context
from ..redact import json_escaped, json_safe, normalize_secrets, redact_json, redact_text
from ..text import shorten
from .format import (
    TS_LEN,
    DumpCorrupt,
    DumpLookupError,
    DumpNotFound,
    DumpPage,
    DumpSummary,
    FailureDump,
    InvalidDumpId,
    decode_cursor,
    encode_cursor,
    error_slug,
    id_matches,
    is_valid_dump_id,
    make_dump_id,
    model_slug,
    not_found,
    owned_by,
    ts_key,
)

logger = logging.getLogger("hive_mcp.dumps")

DEFAULT_MAX_BYTES = int(DUMP_MAX_MB * MIB)
DEFAULT_MAX_AGE = timedelta(days=DUMP_MAX_AGE_DAYS)
STALE_TMP_AGE_S = 3600.0

_SUFFIX = ".json"
_MAX_NAME_TRIES = 16
_SETTLED_NS = 1_000_000_000


class DumpStore(Listeners):
    """The dump directory: atomic, private, redacted writes; cheap listing; bounded size.

    A `format.DumpWriter`: what the provider writes its dumps to. Its listeners hear of every change
    to the set of dumps (write, prune, delete, purge).

    Safe to share between threads. Several processes may share a directory too:
    names never collide and a file pruned by another process is simply skipped.
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        max_count: int | None = DUMP_MAX_COUNT,
        max_bytes: int | None = DEFAULT_MAX_BYTES,
        max_age: timedelta | None = DEFAULT_MAX_AGE,
        secrets: Iterable[str] = (),
    ) -> None:
        super().__init__()
        if max_count is not None and max_count < 0:
            raise ValueError("max_count must be >= 0 (or None for no limit)")
        if max_bytes is not None and max_bytes < 0:
            raise ValueError("max_bytes must be >= 0 (or None for no limit)")
        if max_age is not None and max_age < timedelta(0):
            raise ValueError("max_age must be >= 0 (or None for no limit)")
        self.directory = Path(directory).expanduser()
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.max_age = max_age
        self._secrets: tuple[str, ...] = normalize_secrets(secrets)
        self._lock = threading.Lock()  # serializes prune/purge and secret updates
        self._changed: set[str] = set()  # the callers whose dumps changed since `changed_callers` was asked
        self._sorted_ids: tuple[int, list[str]] | None = None  # (directory mtime, ids): see _ids

    # -- configuration -----------------------------------------------------

    def add_secret(self, secret: str | None) -> None:
        """Never write this string. Values shorter than `redact.MIN_SECRET_LEN` (8) are ignored."""
        with self._lock:
            self._secrets = normalize_secrets((*self._secrets, secret))

    def changed_callers(self) -> frozenset[str]:
        """The callers whose dumps were written or removed since this was last asked (a dump with no caller
        is nobody's: admins and the stdio user see every dump anyway)."""
        with self._lock:
            changed, self._changed = frozenset(self._changed), set()
        return changed

    def caller_of(self, dump_id: str) -> str | None:
        """The caller whose call left the dump; None when it names none or cannot be read."""
        try:
            caller = json.loads(self._read_raw(dump_id)[0]).get("caller")
        except Exception:  # noqa: BLE001 - gone or unreadable: whose it was cannot be told
            return None
        return caller if isinstance(caller, str) else None

    def _forget(self, dump_id: str) -> bool:
        """Remove one dump, noting whose it was (called under `_lock`)."""
        caller = self.caller_of(dump_id)
        removed = self._remove(dump_id)
        if removed and caller is not None:
            self._changed.add(caller)
        return removed

    # -- writing -----------------------------------------------------------

    def write(self, dump: FailureDump) -> str | None:
        """Store `dump` and return its id, or log one warning and return None. Never raises.

        Names the caller and conversation of the call writing it (`call_context`). Fills `dump.id` when it was
        empty. The dump may be pruned at once if it is already beyond the retention limits (e.g. its
        timestamp is older than max_age).
        """
        dump = _stamped(dump)
        try:
            dump_id = self._write(dump)
        except Exception as exc:  # a failure dump must never turn into a second failure
            logger.warning(
                "could not write failure dump to %s: %s: %s", self.directory, type(exc).__name__, exc
            )
            return None
        dump.id = dump_id
        try:
            with self._lock:
                if dump.caller is not None:
                    self._changed.add(dump.caller)
                self._prune_locked()
        except Exception as exc:
            logger.warning("could not prune failure dumps in %s: %s: %s", self.directory, type(exc).__name__, exc)
        self.notify()
        return dump_id

    def set_conversation(self, dump_id: str, conversation_id: str | None) -> bool:
        """Make dump `dump_id` name `conversation_id`, the one its call's result returns when that is not the one
        the dump was written with (an append that lost the race became a fork; None: the answer was not stored).
        False, with one warning, when it could not. Never raises."""
        try:
            data = json.loads(self._read_raw(dump_id)[0])
            data["conversation_id"] = conversation_id
            if self._replace(dump_id, self._serialize(data, dump_id)):
                return True
            logger.warning("failure dump %s was gone before it could name conversation %s", dump_id, conversation_id)
        except Exception as exc:  # the answer is kept either way; only the dump's label is stale
            logger.warning("could not make failure dump %s name conversation %s: %s: %s",
                           dump_id, conversation_id, type(exc).__name__, exc)  # fmt: skip
        return False

    def _replace(self, dump_id: str, payload: bytes) -> bool:
        """Write `payload` over the file of `dump_id` in one step; False if there is no such file."""
        return overwrite(self._path_for(dump_id), payload)

    def _serialize(self, data: dict[str, Any], dump_id: str) -> bytes:
        """The file's bytes: `data` as JSON, redacted in one scan of the text.

        The scan sees every string, keys included, however the data was built, so
        nothing secret reaches the disk even where a structural walk would look
        away. When it replaced something, the text is parsed again to prove the
        replacement kept the file valid and the id intact.
        """
        data["id"] = dump_id
        secrets = self._secrets
        text, changed = redact_json(json.dumps(data, ensure_ascii=False, indent=2), secrets)
        if changed:
            try:
                reparsed = json.loads(text)
            except ValueError:
                raise ValueError("redaction left invalid JSON; dump not written") from None
            if not isinstance(reparsed, dict) or reparsed.get("id") != dump_id:
                raise ValueError("redaction altered the dump id; dump not written")
            if any(s in text or json_escaped(s) in text for s in secrets):
                raise ValueError("a secret survived redaction; dump not written")
        return text.encode("utf-8", errors="replace")

    def _write(self, dump: FailureDump) -> str:
        private_dir(self.directory)
        return self._store(dump, self._claim)

    def _store(self, dump: FailureDump, claim: Callable[[str, bytes], bool]) -> str:
        """Serialize `dump` and `claim` a name for it: its own id if it has one, else a fresh one, until one is free."""
        data = json_safe(dump.model_dump(mode="python"))
        given = dump.id if is_valid_dump_id(dump.id) else None
        # The name is built from redacted fields, so a secret can never reach a file name.
        error_type, model = (redact_text(str(data[k]), self._secrets) for k in ("error_type", "model"))
        for attempt in range(_MAX_NAME_TRIES):
            dump_id = given if given and attempt == 0 else make_dump_id(dump.timestamp, error_type, model)
            if claim(dump_id, self._serialize(data, dump_id)):
                return dump_id
        raise FileExistsError(errno.EEXIST, f"no free dump name after {_MAX_NAME_TRIES} tries")

    def _claim(self, dump_id: str, payload: bytes) -> bool:
        """Write `payload` as the file of `dump_id` unless that name is taken; False if it was."""
        return claim(self.directory, dump_id + _SUFFIX, payload)

    # -- scanning ----------------------------------------------------------

    def _scan(self, *, sizes: bool = False) -> list[tuple[str, int]]:
        """(id, size) of every dump, unordered; size is 0 unless `sizes`. Never opens a file."""
        out: list[tuple[str, int]] = []
        try:
            it = os.scandir(self.directory)
        except (FileNotFoundError, NotADirectoryError):
            return out
        with it:
            for entry in it:
                name = entry.name
                if not name.endswith(_SUFFIX) or name.startswith("."):
                    continue
                stem = name[: -len(_SUFFIX)]
                if not is_valid_dump_id(stem):
                    continue
                try:
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    size = entry.stat(follow_symlinks=False).st_size if sizes else 0
                except FileNotFoundError:  # removed under us
                    continue
                out.append((stem, size))
        return out

    def _ids(self) -> list[str]:
        """Every dump id, oldest first: ids sort by time (do not modify the list).

        Listing 10,000 dumps is mostly the directory scan, so the sorted ids are
        kept while the directory's mtime stands still: adding, renaming or removing
        a file (by this store or anyone else) changes it. mtime moves in coarse
        ticks, so a scan is kept only once the directory has been still for
        `_SETTLED_NS`: a change in the same tick as the scan cannot be missed.
        """
        try:
            mtime = os.stat(self.directory).st_mtime_ns
        except (FileNotFoundError, NotADirectoryError):
            return []
        kept = self._sorted_ids
        if kept is not None and kept[0] == mtime:
            return kept[1]
        ids = sorted(dump_id for dump_id, _ in self._scan())
        if time.time_ns() - mtime > _SETTLED_NS:
            self._sorted_ids = (mtime, ids)
        return ids

    def ids(self) -> list[str]:
        """Every dump's id, oldest first."""
        return list(self._ids())

    def count(self) -> int:
        """How many dumps there are."""
        return len(self._ids())

    # -- retention ---------------------------------------------------------

    def prune(self) -> int:
        """Apply the retention limits now; returns how many dumps were removed."""
        with self._lock:
            removed = self._prune_locked()
        if removed:
            self.notify()
        return removed

    def _remove(self, dump_id: str) -> bool:
        return unlink_quiet(os.path.join(self.directory, dump_id + _SUFFIX))

    def _prune_locked(self) -> int:
        entries = sorted(self._scan(sizes=True))  # oldest first: ids sort by time
        removed = 0
        keep: list[tuple[str, int]] = []
        cutoff = self._cutoff(self.max_age)
        for dump_id, size in entries:
            if cutoff is not None and dump_id[:TS_LEN] < cutoff:
                removed += self._forget(dump_id)
            else:
                keep.append((dump_id, size))
        n, total = len(keep), sum(size for _, size in keep)
        for dump_id, size in keep:
            if (self.max_count is None or n <= self.max_count) and (self.max_bytes is None or total <= self.max_bytes):
                break
            removed += self._forget(dump_id)
            n, total = n - 1, total - size
        self._clean_tmp()
        return removed

    @staticmethod
    def _cutoff(age: timedelta | None) -> str | None:
        if age is None:
            return None
        try:
            return ts_key(datetime.now(UTC) - age)
        except OverflowError:
            return None

    def _clean_tmp(self) -> None:
        """Remove our temp files left by a crash (older than an hour, so not in-flight writes)."""
        limit = time.time() - STALE_TMP_AGE_S
        try:
            it = os.scandir(self.directory)
        except OSError:
            return
        with it:
            for entry in it:
                if TMP_RE.fullmatch(entry.name):
                    try:
                        if entry.stat(follow_symlinks=False).st_mtime < limit:
                            os.unlink(entry.path)
                    except FileNotFoundError:
                        pass

    def purge(self, older_than: timedelta | None = None) -> int:
        """Remove every dump, or those older than `older_than`; returns how many."""
        with self._lock:
            cutoff = None if older_than is None else self._cutoff(older_than)
            if older_than is not None and cutoff is None:
                return 0
            removed = 0
            for dump_id, _ in self._scan():
                if cutoff is None or dump_id[:TS_LEN] < cutoff:
                    removed += self._forget(dump_id)
            self._clean_tmp()
        if removed:
            self.notify()
        return removed

    def delete(self, dump_id: str) -> bool:
        """Remove one dump; False if there was none. Malformed ids raise InvalidDumpId."""
        self._path_for(dump_id)  # InvalidDumpId for a malformed id
        with self._lock:
            removed = self._forget(dump_id)
        if removed:
            self.notify()
        return removed

    # -- reading -----------------------------------------------------------

    def _path_for(self, dump_id: str) -> Path:
        """The file of `dump_id`, refusing anything that could name a file elsewhere."""
        if not is_valid_dump_id(dump_id):  # checked before any filesystem access
            raise InvalidDumpId(f"not a dump id: {shorten(repr(dump_id), 80)}")
        path = self.directory / (dump_id + _SUFFIX)
        if path.resolve().parent != self.directory.resolve():
            raise InvalidDumpId(f"dump id {dump_id!r} resolves outside the dump directory")
        return path

    def _read_raw(self, dump_id: str) -> tuple[str, int]:
        """(JSON text, size from fstat). Every read of a dump file goes through here."""
        path = self._path_for(dump_id)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise not_found(dump_id) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise DumpNotFound(f"no dump {dump_id!r} (not a regular file)") from None
            raise
        with os.fdopen(fd, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            raw = f.read()
        try:
            return raw.decode("utf-8"), size
        except UnicodeDecodeError:
            raise DumpCorrupt(f"dump {dump_id!r} is not UTF-8") from None

    def _load(self, dump_id: str) -> tuple[FailureDump, int]:
        text, size = self._read_raw(dump_id)
        try:
            return FailureDump.model_validate_json(text), size
        except ValidationError as exc:
            raise DumpCorrupt(f"dump {dump_id!r} is not a valid dump: {exc.error_count()} error(s)") from None

    def read(self, dump_id: str) -> FailureDump:
        """The dump with this id. Raises InvalidDumpId, DumpNotFound or DumpCorrupt."""
        dump, _ = self._load(dump_id)
        dump.id = dump_id  # the file name is authoritative
        return dump

    def read_text(self, dump_id: str) -> str:
        """The dump's JSON exactly as stored."""
        return self._read_raw(dump_id)[0]

    # -- listing -----------------------------------------------------------

    def _summarize(self, dump_id: str, model: str | None, caller: str | None = None) -> DumpSummary | None:
        """Summary of one dump, or None if it vanished, is corrupt, or is not `model`'s or `caller`'s."""
        try:
            dump, size = self._load(dump_id)
        except DumpNotFound:
            return None
        except DumpLookupError as exc:
            logger.warning("skipping unreadable dump %s: %s", dump_id, exc)
            return None
        if (model is not None and dump.model != model) or not owned_by(dump, caller):
            return None
        return DumpSummary(
            id=dump_id,
            timestamp=dump.timestamp,
            model=dump.model,
            error_type=dump.error_type,
            outcome=dump.outcome,
            attempt_count=dump.attempt_count,
            message_count=dump.message_count,
            size_bytes=size,
        )

    def list(
        self,
        *,
        error_type: str | None = None,
        model: str | None = None,
        since: datetime | None = None,
        limit: int = DEFAULT_PAGE_LIMIT,
        cursor: str | None = None,
        caller: str | None = None,
    ) -> DumpPage:
        """A page of dumps, newest first, filtered from file names; only page files are read.

        With `caller`, only that caller's dumps (`owned_by`): each is read to know, like a `model` filter."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_LIMIT:
            raise ValueError(f"limit must be an integer from 1 to {MAX_PAGE_LIMIT}, got {limit!r}")
        after = decode_cursor(cursor) if cursor is not None else None
        et = error_slug(error_type) if error_type is not None else None
        slug = model_slug(model) if model is not None else None
        since_key = ts_key(since) if since is not None else None

        ids = self._ids()
        if after is not None:
            ids = ids[: bisect.bisect_left(ids, after)]
        newest_first: Iterable[str] = reversed(ids)
        if et is not None or slug is not None or since_key is not None:
            newest_first = (i for i in newest_first if id_matches(i, et, slug, since_key))

        items: list[DumpSummary] = []
        more = False
        for dump_id in newest_first:
            if len(items) == limit:
                # Without a model or caller filter the names are the truth; with one, confirm
                # that another real match exists before promising a next page.
                if (model is None and caller is None) or self._summarize(dump_id, model, caller) is not None:
                    more = True
                    break
                continue
            summary = self._summarize(dump_id, model, caller)
            if summary is not None:
                items.append(summary)
        return DumpPage(
            items=items, next_cursor=encode_cursor(items[-1].id) if more else None, unavailable=self.unlisted()
        )

    def unlisted(self) -> str | None:
        """Which dumps a listing leaves out now, in one line, when part of the store does not answer; None when
        a listing is whole (a directory's always is)."""
        return None


def _stamped(dump: FailureDump) -> FailureDump:
    """`dump` with the caller and conversation of the call writing it (`call_context`), where it names none of
    its own. A call that was to start a conversation and failed names none, since it started none."""
    labels = call_context.current()
    conversation = None if labels.new_conversation and dump.outcome != "recovered" else labels.conversation_id
    update = {
        name: value
        for name, value in (("caller", labels.caller), ("conversation_id", conversation))
        if value is not None and getattr(dump, name) is None
    }
    return dump.model_copy(update=update) if update else dump
