"""Polite, verified, resumable downloads of CTX EDRs into a cache folder.

One product, one file: ``{cache}/{PRODUCT_ID}.IMG``. A file appears there only
after it verified, by an atomic rename, so anything in the cache can be used
without a second look, and an interrupted run leaves nothing half-written in
it. Work in progress lives in ``{cache}/.partial/``: the partial body
(``.part``), what the server said about it (``.json``: ETag, Last-Modified,
size) and a lock file, so two processes on one machine never write the same
product.

Transfer (:mod:`requests`, streaming, no content encoding so byte counts are
exact):

* transient failures (HTTP 408/425/429/500/502/503/504, refused or dropped
  connections, read timeouts, bodies shorter than announced) are retried with
  exponential backoff and jitter; ``Retry-After`` is honoured up to the cap;
* a partial file resumes with ``Range: bytes=N-`` guarded by ``If-Range``
  (the ETag or Last-Modified the partial came from): a server that changed the
  file, or ignores ranges, answers 200 and the download restarts from zero;
* 404 is :class:`ProductNotFoundError`; other 4xx fail at once.

Verification of a complete body (:func:`ctxdask.validation.validate`): the label
parses, the file size is RECORD_BYTES x FILE_RECORDS, PRODUCT_ID is the one
asked for, the CHECKSUM matches (see below), and the md5 matches when one is
given. A file that fails is deleted and fetched again from scratch, up to
``verify-attempts`` times, then :class:`VerificationError`.

CHECKSUM policy. The SIS does not define the CHECKSUM algorithm and ctxdask's
reading of it (a 32-bit byte sum) is not yet confirmed on a real file, so the
project default is to warn. For downloads "warn" means: a mismatch triggers a
second full download, and the file is accepted (with a warning) only when both
downloads have identical bytes, or when an expected md5 was given and matches,
so a transfer error is never waved through. "reject" never accepts a mismatch.

Politeness, cluster-wide. Each download holds a lease of a
:class:`distributed.Semaphore` (``catalog.download.semaphore``, at most
``max-concurrent`` leases) when it runs in a dask worker or beside a dask
client; otherwise the limit is a semaphore within the process. The request
rate limit is enforced per lease: a lease starts at most one request every
``max-concurrent / requests-per-second`` seconds, and is released only when
that interval has passed since its last request. With at most
``max-concurrent`` leases, the whole cluster starts at most
``requests-per-second`` requests per second, with no extra coordination.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import email.utils
import hashlib
import json
import os
import pathlib
import random
import re
import threading
import time
import warnings
from collections.abc import Iterable, Mapping
from typing import Any, Self

import requests

from ctxdask.catalog.errors import DownloadError, ProductNotFoundError, VerificationError
from ctxdask.catalog.lookup import ProductLocator
from ctxdask.exceptions import CTXError, CTXWarning
from ctxdask.product_id import normalize_product_id
from ctxdask.settings import CatalogDownload, Settings, ValidateSettings
from ctxdask.settings import current as current_settings

try:  # POSIX advisory locks keep two local processes off the same partial file
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "DownloadSettings",
    "FetchResult",
    "DownloadWarning",
    "cache_dir",
    "cached_path",
    "fetch",
    "fetch_many",
    "fetch_task",
    "read_md5_manifest",
]

#: HTTP statuses worth another try
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_CONTENT_RANGE_RE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RE = re.compile(r"bytes\s+\*/(\d+)")


class DownloadWarning(CTXWarning):
    """A download succeeded with a caveat (e.g. a CHECKSUM mismatch confirmed by two downloads)."""


class DownloadSettings(CatalogDownload):
    """How downloads behave; read from ``ctxdask.catalog.download`` at call time.

    Passed to workers as a task argument, so a worker's own configuration never
    changes how it downloads. See ``ctxdask.yaml`` for the meaning of each field.
    ``checksum`` is never null here: null in ``catalog.download`` follows
    ``validate.checksum`` (:meth:`from_settings`; built bare, the yaml's).
    """

    def check(self) -> None:
        """Resolve ``checksum: null`` to the ``validate.checksum`` default."""
        if self.checksum is None:  # null follows validate.checksum: with no settings at hand, the yaml's
            object.__setattr__(self, "checksum", ValidateSettings().checksum)

    @classmethod
    def from_settings(cls, settings: Settings, /, **overrides: Any) -> Self:
        """As :meth:`Section.from_settings`; a null ``checksum`` follows ``settings.validate.checksum``."""
        if overrides.get("checksum") is None and settings.catalog.download.checksum is None:
            overrides["checksum"] = settings.validate.checksum
        return super().from_settings(settings, **overrides)

    @property
    def request_interval(self) -> float:
        """Seconds between two request starts within one lease."""
        return self.max_concurrent / self.requests_per_second


@dataclasses.dataclass
class FetchResult:
    """What :func:`fetch` did for one product."""

    product_id: str
    path: str
    url: str | None
    size: int
    md5: str | None
    cached: bool
    requests: int = 0
    resumed_bytes: int = 0
    seconds: float = 0.0
    warnings: list[str] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        """One line for logs and the CLI."""
        how = "cached" if self.cached else f"downloaded ({self.requests} requests"
        if not self.cached:
            how += f", resumed {self.resumed_bytes:,} bytes)" if self.resumed_bytes else ")"
        extra = f"; {'; '.join(self.warnings)}" if self.warnings else ""
        return f"{self.product_id}: {how} {self.size:,} bytes -> {self.path}{extra}"


def cache_dir(path: str | os.PathLike | None = None) -> pathlib.Path:
    """The cache folder: ``path``, else ``ctxdask.catalog.cache-dir``, else ``~/.cache/ctxdask/edr``."""
    chosen = path or current_settings().catalog.cache_dir
    if chosen is None:
        chosen = pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache")) / "ctxdask" / "edr"
    return pathlib.Path(os.path.expanduser(os.fspath(chosen)))


def cached_path(product_id: str, cache: str | os.PathLike | None = None) -> pathlib.Path:
    """Where a verified product lives in the cache (it may not be there yet)."""
    pid = normalize_product_id(product_id)
    return cache_dir(cache) / f"{pid}.IMG"


def read_md5_manifest(path: str | os.PathLike) -> dict[str, str]:
    """Read an ``md5sum``-style manifest (``HEX  path``) into ``{product id: md5}``.

    Lines whose file name is not a CTX product are ignored (volumes list labels,
    indexes and documents too).
    """
    out: dict[str, str] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.strip().split(maxsplit=1)
            if len(parts) != 2 or not re.fullmatch(r"[0-9a-fA-F]{32}", parts[0]):
                continue
            stem = os.path.splitext(os.path.basename(parts[1].lstrip("*").replace("\\", "/")))[0]
            try:
                out[normalize_product_id(stem)] = parts[0].lower()
            except CTXError:
                continue
    return out


def fetch(
    product_id: str,
    *,
    url: str | None = None,
    locator: ProductLocator | Mapping[str, str] | None = None,
    cache: str | os.PathLike | None = None,
    md5: str | None = None,
    settings: DownloadSettings | None = None,
    verify_cached: bool = False,
) -> FetchResult:
    """Download one product into the cache, verified, or return the cached copy.

    Parameters
    ----------
    product_id : str
        Full id, or the short ``PPP_NNNNNN`` form when a ``locator`` can resolve it.
    url : str, optional
        Where to get it; default: ``locator``.
    locator : ProductLocator or mapping, optional
        Product id -> URL (from :class:`ProductLocator` or a plain dict).
    cache : str or os.PathLike, optional
        Cache folder; default :func:`cache_dir`.
    md5 : str, optional
        Expected md5 of the whole file (hex), e.g. from a volume's checksum manifest.
    settings : DownloadSettings, optional
        Default: :meth:`DownloadSettings.from_config`.
    verify_cached : bool
        Fully re-validate a cached file (by default a cached file is checked for
        label and size only, since it verified when it arrived).

    Returns
    -------
    FetchResult

    Raises
    ------
    ProductNotFoundError
        The locator does not know the id, or the server answers 404.
    DownloadError
        Retries exhausted or a permanent HTTP error; a partial file stays for resume.
    VerificationError
        Complete downloads kept failing verification; nothing is left in the cache.
    """
    settings = settings or DownloadSettings.from_config()
    pid, url = _resolve(product_id, url, locator)
    folder = cache_dir(cache)
    final = folder / f"{pid}.IMG"
    partial = folder / ".partial"
    partial.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with _file_lock(partial / f"{pid}.lock"):
        notes: list[str] = []
        if final.exists():
            problem = _check_cached(final, pid, md5, full=verify_cached or md5 is not None, settings=settings)
            if problem is None:
                return FetchResult(pid, str(final), url, final.stat().st_size, md5, cached=True,
                                   seconds=time.monotonic() - started)
            # a bad file in the cache should not exist; do not trust it, fetch again
            final.unlink()
            notes.append(f"the cached copy was bad ({problem}) and was fetched again")
        if url is None:
            raise ProductNotFoundError(None, f"{pid}: no URL known; give a locator (index or URL list) or a URL")
        result = _download_verified(pid, url, final, partial, md5, settings)
        result.warnings[:0] = notes
        result.seconds = time.monotonic() - started
        return result


def fetch_task(product_id: str, url: str, cache: str, md5: str | None, settings: DownloadSettings) -> FetchResult:
    """:func:`fetch` with every setting explicit: the function batch steps submit to dask."""
    return fetch(product_id, url=url, cache=cache, md5=md5, settings=settings)


def fetch_many(
    product_ids: Iterable[str],
    *,
    locator: ProductLocator | Mapping[str, str],
    cache: str | os.PathLike | None = None,
    md5s: Mapping[str, str] | None = None,
    settings: DownloadSettings | None = None,
    client: Any = None,
) -> list[FetchResult | CTXError]:
    """Fetch several products; failures are returned, not raised, so one bad id stops nothing.

    Parameters
    ----------
    product_ids : iterable of str
        Full or short ids; duplicates are fetched once.
    locator : ProductLocator or mapping
        Product id -> URL.
    cache, settings :
        As for :func:`fetch`.
    md5s : mapping, optional
        ``{product id: md5}`` (see :func:`read_md5_manifest`).
    client : distributed.Client, optional
        Run on this dask cluster, one task per product with key
        ``ctxdask-fetch-{PRODUCT_ID}``; the cluster-wide semaphore limits the
        downloads at once. Without a client, threads of this process do it.

    Returns
    -------
    list
        One :class:`FetchResult` or :class:`CTXError` per distinct product, in input order.
    """
    settings = settings or DownloadSettings.from_config()
    folder = str(cache_dir(cache))
    md5s = md5s or {}
    jobs: list[tuple[str, str | None, CTXError | None]] = []
    seen = set()
    for text in product_ids:
        try:
            pid, url = _resolve(text, None, locator)
        except CTXError as exc:
            jobs.append((str(text), None, exc))
            continue
        if pid not in seen:
            seen.add(pid)
            jobs.append((pid, url, None))

    results: list[FetchResult | CTXError | None] = [err for _, _, err in jobs]
    todo = [(i, pid, url) for i, (pid, url, err) in enumerate(jobs) if err is None]
    if client is not None:
        futures = [client.submit(fetch_task, pid, url, folder, md5s.get(pid), settings,
                                 key=f"ctxdask-fetch-{pid}", pure=False, retries=0)
                   for _, pid, url in todo]
        for (i, _, _), future in zip(todo, futures):
            try:
                results[i] = future.result()
            except CTXError as exc:
                results[i] = exc
    else:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, settings.max_concurrent)) as pool:
            futures = {pool.submit(fetch_task, pid, url, folder, md5s.get(pid), settings): i for i, pid, url in todo}
            for future in concurrent.futures.as_completed(futures):
                try:
                    results[futures[future]] = future.result()
                except CTXError as exc:
                    results[futures[future]] = exc
    return results  # type: ignore[return-value]


# -- resolution and cache ----------------------------------------------------------------------


def _resolve(product_id: str, url: str | None,
             locator: ProductLocator | Mapping[str, str] | None) -> tuple[str, str | None]:
    if isinstance(locator, ProductLocator):
        pid = locator.resolve(product_id)
        return pid, url or locator.url(pid)
    pid = normalize_product_id(product_id)
    if url is None and locator is not None:
        url = locator.get(pid)
        if url is None:
            raise ProductNotFoundError(None, f"{pid} is not in the URL mapping")
    return pid, url


@contextlib.contextmanager
def _file_lock(path: pathlib.Path):
    with open(path, "a+") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _check_cached(path: pathlib.Path, pid: str, md5: str | None, *, full: bool,
                  settings: DownloadSettings) -> str | None:
    """None when the cached file is good, else what is wrong with it."""
    if full:
        problem, _, _ = _verify(path, pid, md5, settings)
        return problem
    from ctxdask.pds3 import read_label

    try:
        label = read_label(path)
    except CTXError as exc:
        return exc.reason
    record_bytes, records = label.get("RECORD_BYTES"), label.get("FILE_RECORDS")
    size = path.stat().st_size
    if isinstance(record_bytes, int) and isinstance(records, int) and size != record_bytes * records:
        return f"{size:,} bytes where the label says {record_bytes * records:,}"
    if str(label.get("PRODUCT_ID", "")).upper() != pid:
        return f"it holds PRODUCT_ID {label.get('PRODUCT_ID')}"
    return None


# -- verification ------------------------------------------------------------------------------


def _md5(path: pathlib.Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify(path: pathlib.Path, pid: str, md5: str | None,
            settings: DownloadSettings) -> tuple[str | None, bool, str]:
    """Check a complete file. Returns ``(problem or None, checksum mismatch?, md5)``."""
    from ctxdask.validation import validate

    digest = _md5(path)
    if md5 is not None and digest != md5.lower():
        return f"md5 {digest} differs from the expected {md5.lower()}", False, digest
    report = validate(path, checksum="warn")
    if not report.ok:
        return report.summary(), False, digest
    if report.product_id and report.product_id != pid:
        return f"the server sent {report.product_id}, not {pid}", False, digest
    mismatch = any(f.check == "checksum" and "computed" in f.details for f in report.findings)
    if mismatch:
        finding = next(f for f in report.findings if f.check == "checksum")
        return finding.message, True, digest
    return None, False, digest


def _download_verified(pid: str, url: str, final: pathlib.Path, partial: pathlib.Path, md5: str | None,
                       settings: DownloadSettings) -> FetchResult:
    part = partial / f"{pid}.IMG.part"
    meta = partial / f"{pid}.IMG.json"
    stats = _Stats()
    problems: list[str] = []
    mismatch_digests: set[str] = set()
    for _attempt in range(settings.verify_attempts):
        with _DownloadSlot(settings) as slot:
            _transfer(url, part, meta, settings, slot, stats)
        problem, checksum_mismatch, digest = _verify(part, pid, md5, settings)
        notes: list[str] = []
        if problem is not None and checksum_mismatch and settings.checksum == "warn":
            if md5 is not None:
                # the md5 (already checked) vouches for the bytes; the CHECKSUM reading does not
                notes.append(f"{problem}; the bytes match the expected md5, kept")
            elif digest in mismatch_digests:
                # the same bytes twice: this is what the archive holds, not a transfer error
                notes.append(f"{problem}; two downloads gave identical bytes (md5 {digest}), kept as served")
            else:
                mismatch_digests.add(digest)
            if notes:
                warnings.warn(f"{pid}: {notes[-1]}", DownloadWarning, stacklevel=3)
                problem = None
        if problem is None:
            _commit(part, final)
            meta.unlink(missing_ok=True)
            return FetchResult(pid, str(final), url, final.stat().st_size, digest, cached=False,
                               requests=stats.requests, resumed_bytes=stats.resumed, warnings=notes)
        problems.append(problem)
        part.unlink(missing_ok=True)  # start the next attempt from zero: the bytes are suspect
        meta.unlink(missing_ok=True)
    raise VerificationError(
        url,
        f"{pid}: {settings.verify_attempts} complete download(s) failed verification: "
        + "; ".join(dict.fromkeys(problems))
        + ". Nothing was put in the cache; the file on the server may be damaged",
    )


def _commit(part: pathlib.Path, final: pathlib.Path) -> None:
    """Atomically move a verified file into the cache, durably."""
    with open(part, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(part, final)
    with contextlib.suppress(OSError):  # directory fsync is not possible everywhere
        fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# -- transfer ----------------------------------------------------------------------------------


@dataclasses.dataclass
class _Stats:
    requests: int = 0
    resumed: int = 0


class _Transient(Exception):
    """A failure worth retrying, with the server's Retry-After when it gave one."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


def _transfer(url: str, part: pathlib.Path, meta_path: pathlib.Path, settings: DownloadSettings,
              slot: _DownloadSlot, stats: _Stats) -> None:
    """Bring ``part`` to the complete body of ``url``, resuming and retrying as needed."""
    failures = 0
    last = ""
    with requests.Session() as session:
        session.headers.update({"User-Agent": settings.user_agent, "Accept-Encoding": "identity"})
        while True:
            try:
                if _request_once(session, url, part, meta_path, settings, slot, stats):
                    return
                # the partial was discarded (the server's range answer did not fit it): start over,
                # counted as a failure so a server that keeps doing this cannot loop us forever
                reason, retry_after = "the server's answer to a range request did not fit the partial file", 0.0
            except _Transient as exc:
                reason, retry_after = str(exc), exc.retry_after
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.ContentDecodingError) as exc:
                reason, retry_after = _describe(exc), None
            failures += 1
            last = reason
            if failures > settings.retries:
                have = part.stat().st_size if part.exists() else 0
                raise DownloadError(
                    url,
                    f"gave up after {failures} failed attempts, the last: {last}. "
                    f"{have:,} bytes are kept in {part} and the next fetch resumes from there",
                )
            delay = min(settings.backoff_max, settings.backoff * 2 ** (failures - 1))
            delay = random.uniform(delay / 2, delay)  # jitter: clients that failed together retry apart
            if retry_after is not None:
                delay = max(delay, min(settings.backoff_max, retry_after))
            time.sleep(delay)


def _request_once(session: requests.Session, url: str, part: pathlib.Path, meta_path: pathlib.Path,
                  settings: DownloadSettings, slot: _DownloadSlot, stats: _Stats) -> bool:
    """One HTTP request. True when ``part`` is complete, False to restart at once."""
    have = part.stat().st_size if part.exists() else 0
    meta = _read_meta(meta_path) if have else {}
    if have and meta.get("size") is not None and have >= meta["size"]:
        if have == meta["size"]:
            return True  # the previous attempt completed the body before it was interrupted
        _discard(part, meta_path)
        have, meta = 0, {}
    headers = {}
    if have:
        headers["Range"] = f"bytes={have}-"
        validator = meta.get("etag") or meta.get("last_modified")
        if validator:
            headers["If-Range"] = validator
    slot.before_request()
    stats.requests += 1
    with session.get(url, headers=headers, stream=True,
                     timeout=(settings.connect_timeout, settings.read_timeout)) as response:
        status = response.status_code
        if status == 416 and have:
            match = _UNSATISFIED_RE.fullmatch(response.headers.get("Content-Range", "").strip())
            if match and int(match.group(1)) == have:
                return True
            _discard(part, meta_path)  # our partial is longer than the file: it is not this file
            return False
        if status in TRANSIENT_STATUS:
            raise _Transient(f"HTTP {status} {response.reason}", _retry_after(response.headers.get("Retry-After")))
        if status == 404:
            raise ProductNotFoundError(url, "the server has no such file (HTTP 404); is the index out of date?")
        if status >= 400:
            raise DownloadError(url, f"HTTP {status} {response.reason}; not retried")
        if status == 206:
            match = _CONTENT_RANGE_RE.fullmatch(response.headers.get("Content-Range", "").strip())
            if not match or int(match.group(1)) != have:
                _discard(part, meta_path)
                return False
            total = None if match.group(3) == "*" else int(match.group(3))
            mode, start = "ab", have
            stats.resumed += have
        elif status == 200:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            mode, start = "wb", 0
        else:
            raise DownloadError(url, f"unexpected HTTP {status} {response.reason}")
        _write_meta(meta_path, {
            "url": url, "size": total,
            "etag": response.headers.get("ETag"), "last_modified": response.headers.get("Last-Modified"),
        })
        written = start
        with open(part, mode) as f:
            for chunk in response.iter_content(chunk_size=settings.chunk_bytes):
                f.write(chunk)
                written += len(chunk)
            f.flush()
            os.fsync(f.fileno())
        if total is not None and written != total:
            raise _Transient(f"the connection ended after {written:,} of {total:,} bytes")
        if total is None:
            _write_meta(meta_path, {**_read_meta(meta_path), "size": written})
        return True


def _discard(part: pathlib.Path, meta: pathlib.Path) -> None:
    part.unlink(missing_ok=True)
    meta.unlink(missing_ok=True)


def _read_meta(path: pathlib.Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_meta(path: pathlib.Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _describe(exc: Exception) -> str:
    text = str(exc)
    kind = type(exc).__name__
    if "Read timed out" in text or isinstance(exc, requests.ReadTimeout):
        return f"{kind}: no data within the read timeout"
    return f"{kind}: {text[:200]}"


# -- concurrency and rate --------------------------------------------------------------------


_LOCAL_SEMAPHORES: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_LOCAL_LOCK = threading.Lock()


def _local_semaphore(name: str, leases: int) -> threading.BoundedSemaphore:
    with _LOCAL_LOCK:
        key = (name, leases)
        if key not in _LOCAL_SEMAPHORES:
            _LOCAL_SEMAPHORES[key] = threading.BoundedSemaphore(leases)
        return _LOCAL_SEMAPHORES[key]


def _dask_semaphore(name: str, leases: int):
    """A distributed.Semaphore when this code runs in a dask worker or beside a client, else None."""
    try:
        import distributed
    except ImportError:  # pragma: no cover - distributed is a dependency
        return None
    try:
        distributed.get_worker()
    except ValueError:
        try:
            distributed.default_client()
        except ValueError:
            return None
    return distributed.Semaphore(max_leases=leases, name=name)


class _DownloadSlot:
    """One lease of the download limit, with the per-lease request spacing."""

    def __init__(self, settings: DownloadSettings):
        self.settings = settings
        self._semaphore: Any = None
        self._last_start: float | None = None

    def __enter__(self) -> _DownloadSlot:
        name, leases = self.settings.semaphore, self.settings.max_concurrent
        self._semaphore = _dask_semaphore(name, leases) or _local_semaphore(name, leases)
        self._semaphore.acquire()
        return self

    def before_request(self) -> None:
        """Wait until this lease may start another request."""
        if self._last_start is not None:
            wait = self._last_start + self.settings.request_interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        self._last_start = time.monotonic()

    def __exit__(self, *exc_info: Any) -> None:
        try:
            if self._last_start is not None:
                # hold the lease until its next request would be allowed, so the next holder
                # cannot start sooner than this one could have
                wait = self._last_start + self.settings.request_interval - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
        finally:
            self._semaphore.release()
