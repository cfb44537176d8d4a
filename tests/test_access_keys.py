"""API keys on every engine: the token, what is stored, authentication, revocation, last use."""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from banking_analytics.access import ApiKey, KeyNotFoundError, KeyStore, Role
from banking_analytics.store import Engine, StoreUnavailableError, open_engine

TOKEN = re.compile(r"ba_live_([a-z2-7]{16})_([A-Za-z0-9_-]{43})")


@pytest.fixture
def keys(engine: Engine) -> KeyStore:
    return KeyStore(engine)


class Calls:
    """Counts an engine's reads and write transactions."""

    def __init__(self, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reads = self.writes = 0
        query, begin = engine.query, engine.begin

        def counted_query(*args: Any, **kwargs: Any) -> Any:
            self.reads += 1
            return query(*args, **kwargs)

        def counted_begin() -> Any:
            self.writes += 1
            return begin()

        monkeypatch.setattr(engine, "query", counted_query)
        monkeypatch.setattr(engine, "begin", counted_begin)


def stored_last_use(engine: Engine, key_id: str) -> datetime | None:
    rows = engine.query(f"SELECT last_used_at FROM api_keys WHERE key_id = '{key_id}'").to_pylist()
    value: datetime | None = rows[0]["last_used_at"]
    return value


# -- the token ------------------------------------------------------------------------------


def test_a_token_is_prefix_id_and_256_bit_secret(keys: KeyStore) -> None:
    issued = keys.create("app servers", Role.INGEST)
    match = TOKEN.fullmatch(issued.secret)
    assert match is not None, issued.secret
    key_id, secret = match.groups()
    assert key_id == issued.key.key_id
    assert len(base64.urlsafe_b64decode(secret + "=")) == 32
    assert len(base64.b32decode(key_id.upper())) == 10


def test_ids_and_secrets_never_repeat(keys: KeyStore) -> None:
    tokens = [keys.create(f"k{i}", "analyst").secret for i in range(100)]
    parts = [TOKEN.fullmatch(t).groups() for t in tokens]  # type: ignore[union-attr]
    assert len({key_id for key_id, _ in parts}) == 100
    assert len({secret for _, secret in parts}) == 100


def test_the_store_holds_only_the_secrets_hash(
    store_url: str, engine: Engine, keys: KeyStore
) -> None:
    issued = keys.create("reporting", Role.ANALYST, created_by="admin-1")
    secret = TOKEN.fullmatch(issued.secret).group(2)  # type: ignore[union-attr]
    rows = engine.query("SELECT * FROM api_keys").to_pylist()
    assert [r["secret_hash"] for r in rows] == [hashlib.sha256(secret.encode()).hexdigest()]
    assert secret not in repr(rows)
    assert secret[:16] not in repr(rows)
    assert repr(rows[0]["role"]) == "'analyst'"
    if store_url.startswith("duckdb:///"):
        engine.close()
        path = Path(store_url.removeprefix("duckdb:///"))
        stored = b"".join(
            p.read_bytes() for p in (path, path.with_name(path.name + ".wal")) if p.exists()
        )
        assert secret.encode() not in stored


def test_a_created_key_is_listed_and_got_as_created(keys: KeyStore) -> None:
    expires = datetime.now(UTC) + timedelta(days=90)
    key = keys.create("ci", "ingest", expires_at=expires, created_by="admin-1").key
    assert key.role is Role.INGEST
    assert key.expires_at == expires
    assert (key.revoked_at, key.last_used_at, key.created_by) == (None, None, "admin-1")
    assert keys.get(key.key_id) == key
    assert keys.list() == [key]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "two\nlines"}, "name"),
        ({"name": "   "}, "name"),
        ({"role": "root"}, "role"),
        ({"role": "ADMIN"}, "role"),
        ({"expires_at": datetime(2030, 1, 1)}, "expires_at"),
        ({"expires_at": datetime(2020, 1, 1, tzinfo=UTC)}, "expires_at"),
        ({"created_by": ""}, "created_by"),
    ],
)
def test_bad_fields_are_refused_by_name(
    keys: KeyStore, engine: Engine, kwargs: dict[str, Any], field: str
) -> None:
    args: dict[str, Any] = {"name": "ok", "role": "admin", **kwargs}
    with pytest.raises(ValueError, match=f"^{field} "):
        keys.create(args.pop("name"), args.pop("role"), **args)
    assert engine.query("SELECT count(*) AS n FROM api_keys").to_pylist() == [{"n": 0}]


# -- authenticating -------------------------------------------------------------------------


def test_the_right_token_authenticates_and_gives_the_key(keys: KeyStore) -> None:
    issued = keys.create("dash", Role.ADMIN)
    key = keys.authenticate(issued.secret)
    assert key is not None
    assert (key.key_id, key.role) == (issued.key.key_id, Role.ADMIN)


def test_a_wrong_secret_or_unknown_id_is_refused(keys: KeyStore) -> None:
    issued = keys.create("dash", Role.ADMIN)
    key_id, secret = TOKEN.fullmatch(issued.secret).groups()  # type: ignore[union-attr]
    other = keys.create("other", Role.ADMIN).secret
    other_secret = TOKEN.fullmatch(other).group(2)  # type: ignore[union-attr]
    flipped = ("A" if secret[0] != "A" else "B") + secret[1:]
    assert keys.authenticate(f"ba_live_{key_id}_{flipped}") is None
    assert keys.authenticate(f"ba_live_{key_id}_{other_secret}") is None
    assert keys.authenticate(f"ba_live_{'a' * 16}_{secret}") is None


MALFORMED = [
    "",
    "ba_live_",
    "Bearer ba_live_aaaaaaaaaaaaaaaa_" + "a" * 43,
    "ba_test_aaaaaaaaaaaaaaaa_" + "a" * 43,
    "ba_live_AAAAAAAAAAAAAAAA_" + "a" * 43,
    "ba_live_aaaaaaaaaaaaaaa1_" + "a" * 43,
    "ba_live_aaaaaaaaaaaaaaaa_" + "a" * 42,
    "ba_live_aaaaaaaaaaaaaaaa_" + "a" * 44,
    "ba_live_aaaaaaaaaaaaaaaa_" + "a" * 42 + "+",
    "ba_live_aaaaaaaaaaaaaaaa_" + "a" * 42 + "é",
    "ba_live_aaaaaaaaaaaaaaaa_" + "a" * 42 + "\n",
    "x" * 100_000,
]


def test_malformed_tokens_are_refused_without_touching_the_store(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = KeyStore(engine, cache_seconds=0)
    calls = Calls(engine, monkeypatch)
    for token in MALFORMED:
        assert keys.authenticate(token) is None, token
    assert (calls.reads, calls.writes) == (0, 0)
    # A well-formed token does need the key table (the cache is off here).
    assert keys.authenticate("ba_live_aaaaaaaaaaaaaaaa_" + "a" * 43) is None
    assert calls.reads == 1


def test_authentication_reads_the_store_once_per_cache_period(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = KeyStore(engine, cache_seconds=3600)
    token = keys.create("dash", Role.ANALYST).secret
    calls = Calls(engine, monkeypatch)
    for _ in range(500):
        assert keys.authenticate(token) is not None
        assert keys.authenticate("ba_live_aaaaaaaaaaaaaaaa_" + "a" * 43) is None
    assert calls.reads <= 1
    assert calls.writes == 0


def test_a_revoked_key_is_refused_at_once_by_the_store_that_revoked_it(keys: KeyStore) -> None:
    issued = keys.create("dash", Role.ADMIN)
    assert keys.authenticate(issued.secret) is not None
    revoked = keys.revoke(issued.key.key_id)
    assert revoked.revoked_at is not None
    assert not revoked.active(datetime.now(UTC))
    assert keys.authenticate(issued.secret) is None


def test_revoking_twice_keeps_the_first_time(keys: KeyStore) -> None:
    key_id = keys.create("dash", Role.ADMIN).key.key_id
    first = keys.revoke(key_id)
    again = keys.revoke(key_id)
    assert again.revoked_at == first.revoked_at
    assert keys.get(key_id).revoked_at == first.revoked_at


def test_unknown_keys_are_not_found(keys: KeyStore) -> None:
    for key_id in ("aaaaaaaaaaaaaaaa", "not an id", ""):
        with pytest.raises(KeyNotFoundError, match="no API key"):
            keys.get(key_id)
        with pytest.raises(KeyNotFoundError, match="no API key"):
            keys.revoke(key_id)


def test_a_revocation_elsewhere_takes_effect_within_the_cache_period(store_url: str) -> None:
    with open_engine(store_url) as here, open_engine(store_url) as elsewhere:
        admin = KeyStore(elsewhere)
        issued = admin.create("dash", Role.ADMIN)
        short = KeyStore(here, cache_seconds=0.2)
        long = KeyStore(here, cache_seconds=3600)
        assert short.authenticate(issued.secret) is not None
        assert long.authenticate(issued.secret) is not None

        admin.revoke(issued.key.key_id)

        assert admin.authenticate(issued.secret) is None
        assert long.authenticate(issued.secret) is not None  # still cached: by design
        time.sleep(0.3)
        assert short.authenticate(issued.secret) is None


def test_a_new_key_elsewhere_is_accepted_after_the_cache_period(store_url: str) -> None:
    with open_engine(store_url) as here, open_engine(store_url) as elsewhere:
        keys = KeyStore(here, cache_seconds=0.2)
        assert keys.authenticate("ba_live_aaaaaaaaaaaaaaaa_" + "a" * 43) is None
        token = KeyStore(elsewhere).create("late", Role.INGEST).secret
        time.sleep(0.3)
        assert keys.authenticate(token) is not None


def test_an_expired_key_is_refused(keys: KeyStore) -> None:
    issued = keys.create(
        "brief", Role.INGEST, expires_at=datetime.now(UTC) + timedelta(seconds=0.3)
    )
    assert keys.authenticate(issued.secret) is not None
    time.sleep(0.4)
    assert keys.authenticate(issued.secret) is None
    assert not keys.get(issued.key.key_id).active(datetime.now(UTC))


def test_list_can_leave_out_revoked_keys(keys: KeyStore) -> None:
    kept = keys.create("kept", Role.ANALYST).key
    gone = keys.create("gone", Role.ANALYST).key
    keys.revoke(gone.key_id)
    assert [k.key_id for k in keys.list()] == [kept.key_id, gone.key_id]
    assert keys.list(include_revoked=False) == [kept]


# -- last use -------------------------------------------------------------------------------


def test_last_use_is_written_on_flush_not_per_request(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = KeyStore(engine, last_used_flush_seconds=3600)
    issued = keys.create("dash", Role.ANALYST)
    calls = Calls(engine, monkeypatch)
    before = datetime.now(UTC)
    for _ in range(200):
        assert keys.authenticate(issued.secret) is not None
    assert calls.writes == 0
    assert stored_last_use(engine, issued.key.key_id) is None
    seen_here = keys.get(issued.key.key_id).last_used_at
    assert seen_here is not None
    assert seen_here >= before

    keys.flush()
    assert calls.writes == 1
    assert stored_last_use(engine, issued.key.key_id) == seen_here
    keys.flush()
    keys.close()
    assert calls.writes == 1  # nothing new to write


def test_last_use_is_written_once_the_interval_is_over(engine: Engine) -> None:
    keys = KeyStore(engine, last_used_flush_seconds=0.2)
    issued = keys.create("dash", Role.ANALYST)
    keys.authenticate(issued.secret)
    assert stored_last_use(engine, issued.key.key_id) is None
    time.sleep(0.3)
    keys.authenticate(issued.secret)
    # Written in the background, so that no request waits for the commit.
    deadline = time.monotonic() + 30
    while stored_last_use(engine, issued.key.key_id) is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    keys.close()  # the owner closes the key store before the store it writes to


def test_close_writes_the_last_use(engine: Engine) -> None:
    keys = KeyStore(engine, last_used_flush_seconds=3600)
    issued = keys.create("dash", Role.ANALYST)
    keys.authenticate(issued.secret)
    keys.close()
    assert stored_last_use(engine, issued.key.key_id) is not None


def test_a_failed_last_use_write_does_not_fail_authentication(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    keys = KeyStore(engine, last_used_flush_seconds=0)
    issued = keys.create("dash", Role.ANALYST)
    begin = engine.begin

    def unavailable() -> Any:
        raise StoreUnavailableError("the store is down")

    monkeypatch.setattr(engine, "begin", unavailable)
    assert keys.authenticate(issued.secret) is not None
    with pytest.raises(StoreUnavailableError):
        keys.flush()  # waits for the background write, which failed and logged why
    assert "could not write the last use" in caplog.text

    monkeypatch.setattr(engine, "begin", begin)
    keys.flush()
    assert stored_last_use(engine, issued.key.key_id) is not None


def test_an_older_use_never_overwrites_a_newer_one(store_url: str) -> None:
    with open_engine(store_url) as first, open_engine(store_url) as second:
        early = KeyStore(first, last_used_flush_seconds=3600)
        late = KeyStore(second, last_used_flush_seconds=3600)
        token = early.create("dash", Role.ANALYST).secret
        key = early.authenticate(token)
        assert key is not None
        time.sleep(0.01)
        late.authenticate(token)
        late.flush()
        newest = stored_last_use(first, key.key_id)
        early.flush()
        assert stored_last_use(first, key.key_id) == newest


def test_many_threads_authenticate_at_once(engine: Engine) -> None:
    keys = KeyStore(engine, cache_seconds=0.01, last_used_flush_seconds=0.01)
    tokens = [keys.create(f"k{i}", Role.INGEST).secret for i in range(4)]
    results: list[ApiKey | None] = []
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(token: str) -> None:
        try:
            start.wait()
            found = [keys.authenticate(token) for _ in range(300)]
            results.extend(found)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(tokens[i % 4],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == 2400
    assert all(r is not None for r in results)
    keys.close()
    assert all(k.last_used_at is not None for k in keys.list())


def test_bad_cache_settings_are_refused(engine: Engine) -> None:
    bad: list[Callable[[], KeyStore]] = [
        lambda: KeyStore(engine, cache_seconds=-1),
        lambda: KeyStore(engine, last_used_flush_seconds=-1),
    ]
    for make in bad:
        with pytest.raises(ValueError, match="must not be negative"):
            make()
