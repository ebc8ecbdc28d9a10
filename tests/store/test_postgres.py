"""What only the PostgreSQL store has: daily partitions that retention drops whole, one writer per database,
readers that never wait for the writer nor see half a state update, and clear refusals."""

import threading
import time

import numpy as np
import psycopg
import pytest
from pydantic import ValidationError

from hyperscope.domain.time import DAY_MS
from hyperscope.dsn import redact
from hyperscope.errors import ConfigError, HyperscopeError, StoreUnavailable
from hyperscope.ingest import Ingestor
from hyperscope.sources.simulator import Simulator, preset
from hyperscope.store import open_store
from hyperscope.store.base import HistoryQuery, Retention
from hyperscope.store.postgres.schema import OPEN_ROWS_VIEW, _schema_statements
from tests.factories import T0, make_fill, make_position, make_state, make_wallet
from tests.process import wait_until
from tests.test_ingest import CRASH, check_recomputation

DAY = 86_400_000
HOUR = 3_600_000


@pytest.fixture
def url(pg_server, request):
    return pg_server.create_database(f"pg_{abs(hash(request.node.name)) % 10**12}")


def partitions(url, table):
    with psycopg.connect(url) as con:
        rows = con.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %s",
            (table,),
        ).fetchall()
    return sorted(int(name.rsplit("_d", 1)[1]) for (name,) in rows)


def test_retention_drops_whole_daily_partitions_and_keeps_the_rules(url):
    store = open_store(url)
    try:
        sim = Simulator(preset("tiny", seed=5), genesis_ms=T0)
        ingestor = Ingestor(store)
        for k in range(1, 6):  # five updates a day apart
            ingestor.ingest(sim.step(T0 + k * DAY))
        days = partitions(url, "metrics_coin")
        assert len(days) >= 5  # one per day written (and the next day's, made ahead)
        now = store.latest().time
        policy = Retention(
            metrics=2 * DAY,
            full_resolution=HOUR,
            thin_every=HOUR,
            positions=DAY,
            fills=HOUR,
            orders=7 * DAY_MS,
            funding=400 * DAY_MS,
        )
        deleted = store.apply_retention(policy, now)
        assert deleted["partitions"] >= 3
        left = partitions(url, "metrics_coin")
        assert min(left) * DAY >= (now - 2 * DAY) // DAY * DAY  # nothing wholly older than the horizon
        kept = {r["height"] for r in store._dicts("SELECT DISTINCT height FROM metrics_coin")}
        assert store.latest().height in kept and len(kept) == 3  # now, a day and two days back
        assert store._scalar("SELECT min(time) FROM state_updates") >= now - 2 * DAY
        # and the store goes on taking updates into new partitions
        ingestor.ingest(sim.step(now + DAY))
        assert store.status()["counts"]["state_updates"] == 4
    finally:
        store.close()


def test_one_writer_per_database_and_readers_cannot_write(url):
    writer = open_store(url)
    try:
        with pytest.raises(ConfigError, match="another hyperscope ingest is writing"):
            open_store(url)
        reader = open_store(url, read_only=True)
        try:
            sim = Simulator(preset("tiny", seed=5), genesis_ms=T0)
            update = sim.step(T0 + 900_000)
            Ingestor(writer).ingest(update)
            deadline = time.monotonic() + 30  # the writer's commit notifies every reader (or it asks the database)
            while time.monotonic() < deadline:
                if reader.latest() is not None and reader.latest().height == update.height:
                    break
                time.sleep(0.01)
            assert reader.latest().height == update.height
            with pytest.raises(ConfigError, match="opened for reading"):
                Ingestor(reader).ingest(sim.step(T0 + 2 * 900_000))
        finally:
            reader.close()
    finally:
        writer.close()
    open_store(url).close()  # the lock went with the writer's session


def test_readers_never_wait_for_the_writer_nor_see_half_an_update(url):
    store = open_store(url)
    sim = Simulator(preset("tiny", seed=9), genesis_ms=T0)
    ingestor = Ingestor(store)
    ingestor.ingest(sim.step(T0 + 900_000))
    mismatches, reads = [], [0]
    done = threading.Event()

    def read() -> None:
        with psycopg.connect(url, autocommit=True) as con:
            # a long reader: an open REPEATABLE READ transaction holding its snapshot while updates land
            with con.transaction():
                con.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                before = con.execute("SELECT count(*) FROM open_states").fetchone()[0]
                while not done.is_set():
                    # one statement, one snapshot: the newest update's count and the open positions agree
                    positions, stored = con.execute(
                        "SELECT (SELECT positions FROM state_updates ORDER BY height DESC LIMIT 1), "
                        "(SELECT count(*) FROM open_states)"
                    ).fetchone()
                    if positions != stored or stored != before:
                        mismatches.append((positions, stored, before))
                    reads[0] += 1
            while reads[0] < 10_000 and not done.wait(0):  # and fresh statements outside it
                positions, stored = con.execute(
                    "SELECT (SELECT positions FROM state_updates ORDER BY height DESC LIMIT 1), "
                    "(SELECT count(*) FROM open_states)"
                ).fetchone()
                if positions != stored:
                    mismatches.append((positions, stored))
                reads[0] += 1

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for k in range(2, 8):  # the writer goes on while the reader's transaction stays open
            ingestor.ingest(sim.step(T0 + k * 900_000))
    finally:
        done.set()
        reader.join(timeout=30)
        store.close()
    assert reads[0] > 10 and mismatches == []


def test_a_reader_of_a_database_without_hyperscope_data_is_refused(pg_server):
    empty = pg_server.create_database("empty_one")
    with pytest.raises(ConfigError, match="no hyperscope data"):
        open_store(empty, read_only=True)
    from hyperscope.store.keys import open_key_store

    with pytest.raises(ConfigError, match="no hyperscope data"):
        open_key_store(empty)


ODD_URLS = [
    "postgresql://me:s3cretPW@127.0.0.1:1/nowhere",
    "postgresql://me:S3cret%PW@127.0.0.1:1/nowhere",  # '%' that is not percent-encoding
    "postgresql://me:S3cret%25PW@127.0.0.1:1/nowhere",
    "postgresql://me@127.0.0.1:1/nowhere?password=S3cretPW",
    "postgresql://me@127.0.0.1:1/nowhere?sslmode=disable&password=S3cret%2FPW",
    "postgresql://me:S3cretPW@127.0.0.1:notaport/nowhere",
    "postgresql://me:S3cret@PW@127.0.0.1:1/nowhere",  # an '@' inside the password
    "postgres://me:S3cretPW@[::1]:1/nowhere",
]


@pytest.mark.parametrize("url", ODD_URLS)
def test_no_message_about_an_odd_url_shows_its_password(url, caplog):
    """Whatever the URL's shape, neither the settings check, the store, the key store nor the logs show it."""
    from hyperscope.settings import Settings, describe_error
    from hyperscope.store.keys import open_key_store

    texts = [redact(url)]
    try:
        Settings(store=url)
    except ValidationError as e:
        texts.append(describe_error(e))
    for opener in (lambda: open_store(url, read_only=True), lambda: open_key_store(url)):
        with pytest.raises(HyperscopeError) as raised:
            opener()
        texts += [raised.value.message, raised.value.log_text]
    texts += [r.getMessage() for r in caplog.records]
    for text in texts:
        assert "S3cret" not in text and "s3cret" not in text and "PW" not in text, text
    assert "cannot connect" in texts[-2] or "cannot open" in texts[-2]


def test_an_unreachable_database_is_one_clear_retryable_error():
    url = "postgresql://me:s3cret@127.0.0.1:1/nowhere"
    with pytest.raises(StoreUnavailable) as raised:
        open_store(url, read_only=True)
    assert raised.value.message == "cannot connect to the PostgreSQL store"  # what /health may show: no place
    assert "127.0.0.1:1/nowhere" in raised.value.detail  # what the operator's log and terminal show
    assert redact(url) == "postgresql://me:***@127.0.0.1:1/nowhere"


def test_a_long_reader_neither_blocks_new_days_nor_the_retention_that_drops_old_ones(url):
    store = open_store(url)
    sim = Simulator(preset("tiny", seed=5), genesis_ms=T0)
    ingestor = Ingestor(store)
    try:
        for k in range(1, 4):
            ingestor.ingest(sim.step(T0 + k * DAY))
        with psycopg.connect(url) as reader:  # a transaction left open on every metric partition
            reader.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            seen = reader.execute("SELECT count(*) FROM metrics_coin").fetchone()[0]
            started = time.monotonic()
            ingestor.ingest(sim.step(T0 + 6 * DAY))  # new days' partitions are attached meanwhile
            assert time.monotonic() - started < 5
            policy = Retention(
                metrics=DAY,
                full_resolution=HOUR,
                thin_every=HOUR,
                positions=DAY,
                fills=HOUR,
                orders=7 * DAY_MS,
                funding=400 * DAY_MS,
            )
            started = time.monotonic()
            store.apply_retention(policy, store.latest().time)  # old days wait for the reader, at most 2 s
            assert time.monotonic() - started < 6
            assert reader.execute("SELECT count(*) FROM metrics_coin").fetchone()[0] == seen  # its snapshot holds
        store.apply_retention(policy, store.latest().time)  # the reader is gone: the old days go now
        assert min(partitions(url, "metrics_coin")) * DAY >= store.latest().time - 2 * DAY
        assert store._scalar("SELECT count(DISTINCT height) FROM metrics_coin") == 1
    finally:
        store.close()


@pytest.mark.parametrize("version", [6, 8])
def test_an_older_database_is_migrated_in_place(url, version):
    """Schema 7 adds the stored liquidation maps and the size cohort of the hourly marks, schema 8 the open
    positions' coin, opening time and wallet key, schema 9 the views of the published update over the open
    positions and profiles; a database made before them is brought up to date by the next writer, answers
    /positions and the wallets as before, and takes new state updates."""
    sim = Simulator(preset("tiny", seed=5), genesis_ms=T0)
    store = open_store(url)
    Ingestor(store).ingest(sim.step(T0 + 900_000))
    query = HistoryQuery(start=T0, end=T0 + 900_000, limit=500, order_by="unrealized_pnl", descending=True)
    before = store.position_history(query)
    wallets = store._dicts("SELECT * FROM wallets ORDER BY address")
    store.close()
    (positions_open,) = [s for s in _schema_statements() if "VIEW positions_open" in s]
    with psycopg.connect(url, autocommit=True) as con:  # back to schema 8: plain tables, views over them
        con.execute("DROP VIEW open_rows, positions_open, open_states, wallets")
        con.execute("ALTER TABLE open_state_rows RENAME TO open_states")
        columns = ", ".join(str(name) for name in wallets[0])
        con.execute(f"INSERT INTO wallet_rows ({columns}) SELECT {columns} FROM recent_wallet_rows")
        con.execute("DROP TABLE recent_wallet_rows")
        con.execute("ALTER TABLE wallet_rows DROP COLUMN gen")
        con.execute("ALTER TABLE wallet_rows RENAME TO wallets")
        con.execute(positions_open)
        if version == 6:
            con.execute("DROP TABLE metrics_liquidation")
            con.execute("ALTER TABLE wallet_marks DROP COLUMN size_segment")
            con.execute("ALTER TABLE open_states DROP COLUMN coin, DROP COLUMN open_time, DROP COLUMN wallet")
        else:
            con.execute(OPEN_ROWS_VIEW)
        con.execute("UPDATE meta SET value = %s WHERE key = 'schema_version'", (str(version),))
    with pytest.raises(ConfigError, match=f"schema version {version}"):
        open_store(url, read_only=True)  # a reader never migrates: it says which command does
    store = open_store(url)
    try:
        assert store.get_meta("schema_version") == "9"
        assert store._scalar("SELECT count(*) FROM open_states WHERE coin IS NULL OR wallet IS NULL") == 0
        assert store.position_history(query) == before
        assert store._dicts("SELECT * FROM wallets ORDER BY address") == wallets
        Ingestor(store).ingest(sim.step(T0 + 5 * 900_000))  # the next hour: a mark with its size cohort
        assert store._scalar("SELECT count(*) FROM metrics_liquidation") > 0
        assert store._scalar("SELECT count(size_segment) FROM wallet_marks") > 0
        check_recomputation(store, store.latest().height)
    finally:
        store.close()


def test_binary_copy_round_trips_nulls_text_and_every_fixed_type(url):
    """Rows are grouped by their NULL fixed-width fields (no byte mask): whatever the groups, PostgreSQL reads
    back exactly the rows that were encoded, NULLs, empty and uneven text included."""
    import numpy as np
    import pyarrow as pa

    from hyperscope.store.postgres import copy as pgcopy

    rng = np.random.default_rng(3)
    n = 2_000
    ints = rng.integers(-(2**62), 2**62, n)
    floats = rng.normal(0, 1e6, n)
    words = ["", "a", "BTC", "kPEPE", "0x" + "ab" * 20, "ünïcode"]
    table = pa.table(
        {
            "k": pa.array(np.arange(n, dtype=np.int64)),
            "i8": pa.array(ints, mask=rng.random(n) < 0.2),
            "f8": pa.array(floats, mask=rng.random(n) < 0.3),
            "i4": pa.array(rng.integers(-1000, 1000, n).astype(np.int32)),
            "i2": pa.array(rng.integers(-5, 5, n).astype(np.int16), mask=rng.random(n) < 0.1),
            "b": pa.array(rng.random(n) < 0.5, mask=rng.random(n) < 0.05),
            "t": pa.array([words[i] for i in rng.integers(0, len(words), n)], mask=rng.random(n) < 0.15),
            "never": pa.array(np.full(n, 7.5)),
            "always": pa.nulls(n, pa.float64()),
        }
    )
    types = ["bigint", "bigint", "double precision", "integer", "smallint", "boolean", "character varying"]
    types += ["double precision", "double precision"]
    with psycopg.connect(url) as con:
        con.execute(
            "CREATE TABLE copied (k bigint, i8 bigint, f8 double precision, i4 integer, i2 smallint, b boolean, "
            "t varchar, never double precision, always double precision)"
        )
        few = ["k", "f8", "t", "never"]  # 14 layouts: one pass each (the whole table has too many: a byte mask)
        for rows, kinds in (
            (table, types),
            (table.select(few), [types[table.column_names.index(c)] for c in few]),
            (table.slice(0, 1), types),
            (table.slice(5, 0), types),
        ):
            con.execute("TRUNCATE copied")
            with con.cursor().copy(f"COPY copied ({', '.join(rows.column_names)}) FROM STDIN (FORMAT BINARY)") as copy:
                for piece in pgcopy.encode(rows, kinds):
                    copy.write(piece)
            back = con.execute(f"SELECT {', '.join(rows.column_names)} FROM copied ORDER BY k").fetchall()
            assert back == [tuple(r.values()) for r in rows.to_pylist()]


def test_a_close_days_before_its_update_lands_in_its_own_day_and_a_wrong_bound_stores_nothing(url, monkeypatch):
    # the partitions are made before the write's transaction from the batch's bounds, without waiting for the
    # lifecycles: a close at a fill three days before the update gets that day's partition
    first = make_state(1, [make_position(1, "BTC", 1.0), make_position(2, "BTC", -1.0)])
    now = T0 + 5 * DAY
    closing = [make_fill(1, "BTC", "A", 1.0, 1.0, T0 + 2 * DAY + 5_000)]
    second = make_state(2, [make_position(2, "BTC", -1.0), make_position(3, "BTC", 1.0)], fills=closing, time=now)
    store = open_store(url)
    try:
        ingestor = Ingestor(store)
        ingestor.ingest(first)
        # a bound that misses the close's day: the write refuses the update whole, and stores nothing of it
        monkeypatch.setattr("hyperscope.ingest.possible_close_times", lambda fills, now: np.array([now]))
        with pytest.raises(HyperscopeError, match="without a partition"):
            ingestor.ingest(second)
        assert store.latest().height == 1
        assert store._scalar("SELECT count(*) FROM positions_closed") == 0
        monkeypatch.undo()
        ingestor.ingest(second)
        assert store.latest().height == 2
        day = (T0 + 2 * DAY) // DAY
        # the first update's day and the next, the close's day, the update's and the next: none between
        first_day = T0 // DAY
        assert partitions(url, "positions_closed") == [first_day, first_day + 1, day, now // DAY, now // DAY + 1]
        rows = store._dicts(f"SELECT close_time FROM positions_closed_d{day}")
        assert [r["close_time"] for r in rows] == [T0 + 2 * DAY + 5_000]
    finally:
        store.close()


class NoVacuum:
    """In place of the store's vacuum signal: the vacuum after each update never runs."""

    def __init__(self) -> None:
        self._never = threading.Event()

    def set(self) -> None:
        pass

    def clear(self) -> None:
        pass

    def wait(self, timeout: float) -> bool:
        return self._never.wait(timeout)


def _published(url):
    """(newest height, open positions, wallets) as a reader on its own connection sees them."""
    with psycopg.connect(url) as con:
        height = con.execute("SELECT max(height) FROM state_updates").fetchone()[0]
        positions = con.execute("SELECT key, size, mark_px, height FROM positions_open ORDER BY key").fetchall()
        wallets = con.execute("SELECT address, perp_equity, height FROM wallets ORDER BY address").fetchall()
    return height, positions, wallets


def test_rows_written_ahead_of_an_update_are_unseen_until_it_commits_and_cleared_when_it_never_does(url):
    """An update's open positions and changed profiles are committed on a second connection just before the
    update itself. Between the two commits readers still see the previous update whole; when the update then
    fails, it stays that way, and its retry (and the updates after it) land once: no open position or profile
    twice, every aggregate recomputing from what is stored."""
    sim = Simulator(preset("tiny", seed=3), genesis_ms=T0)
    store = open_store(url)
    try:
        ingestor = Ingestor(store)
        ingestor.ingest(sim.step(T0 + 900_000))
        before = _published(url)
        before_wallets = len(before[2])
        update = sim.step(T0 + 2 * 900_000)
        seen = []

        def hook(stage: str) -> None:
            if stage == "ahead_committed":
                seen.append(_published(url))  # the rows ahead are committed, the update is not
                raise psycopg.errors.DiskFull("simulated: could not extend file")

        store.fault_hook = hook
        with pytest.raises(StoreUnavailable):
            ingestor.ingest(update)
        assert seen == [before] and _published(url) == before
        with psycopg.connect(url) as con:  # what went ahead is there, unseen
            ahead = con.execute("SELECT count(*) FROM open_state_rows WHERE height = %s", (update.height,))
            assert ahead.fetchone()[0] == update.positions.num_rows
        store.fault_hook = None
        store._vacuum = NoVacuum()  # the previous update's open positions stay stored, behind the view
        ingestor.ingest(update)  # the same height again
        height, positions, wallets = _published(url)
        assert height == update.height and {p[3] for p in positions} == {height}
        assert len(positions) == len({p[0] for p in positions}) == update.positions.num_rows
        assert len(wallets) == len({w[0] for w in wallets}) == before_wallets
        for k in (3, 4):
            ingestor.ingest(sim.step(T0 + k * 900_000))
        height, positions, wallets = _published(url)
        assert height == store.latest().height
        assert len(positions) == len({p[0] for p in positions}) == store.status()["counts"]["open_positions"]
        assert len(wallets) == len({w[0] for w in wallets})
        assert store._scalar("SELECT count(*) FROM wallet_rows WHERE height > %s", (height,)) == 0
        check_recomputation(store, height)
    finally:
        store.close()


def test_a_writer_killed_between_the_two_commits_leaves_the_previous_update_and_the_next_writer_clears_up(url):
    import subprocess
    import sys

    crash = [sys.executable, "-c", CRASH.format(t0=T0), url, "ahead_committed"]  # killed between the commits
    proc = subprocess.run(crash, capture_output=True)
    assert proc.returncode == 137, proc.stderr.decode()
    with psycopg.connect(url) as con:  # the killed update's rows are in the tables, behind the views
        assert con.execute("SELECT count(DISTINCT height) FROM open_state_rows").fetchone()[0] == 2
    store = open_store(url)
    try:
        height = store.latest().height
        check_recomputation(store, height)
        sim = Simulator(preset("tiny", seed=11), genesis_ms=T0)
        sim.step(T0 + 900_000)
        ingestor = Ingestor(store)  # a new writer: the killed update again, and the next
        store._vacuum = NoVacuum()
        update = sim.step(T0 + 2 * 900_000)
        ingestor.ingest(update)
        height, positions, wallets = _published(url)
        assert height == update.height and {p[3] for p in positions} == {height}
        assert len(positions) == len({p[0] for p in positions}) == update.positions.num_rows
        check_recomputation(store, height)
        ingestor.ingest(sim.step(T0 + 3 * 900_000))
        height = store.latest().height
        check_recomputation(store, height)
        assert store._scalar("SELECT count(*) FROM wallet_rows WHERE height > %s", (height,)) == 0
        assert store._scalar("SELECT count(*) FROM wallets") == store._scalar(
            "SELECT count(DISTINCT address) FROM wallets"
        )
    finally:
        store.close()


def test_the_open_positions_and_recent_profiles_of_older_updates_are_deleted_after_each_update(url):
    """Bounded: once the vacuum after an update has run, only that update's open positions and recent profiles
    (those that changed at it) are stored apart."""
    sim = Simulator(preset("tiny", seed=4), genesis_ms=T0)
    store = open_store(url)
    try:
        ingestor = Ingestor(store)
        for k in range(1, 5):
            ingestor.ingest(sim.step(T0 + k * 900_000))
        stored = (
            "SELECT (SELECT count(DISTINCT height) FROM open_state_rows) + "
            "(SELECT count(DISTINCT gen) FROM recent_wallet_rows)"
        )
        wait_until(lambda: store._scalar(stored) == 2, "the rows of older updates deleted")
        assert store._scalar("SELECT min(height) FROM open_state_rows") == store.latest().height
        assert store._scalar("SELECT min(gen) FROM recent_wallet_rows") == store.latest().height
    finally:
        store.close()


def test_profiles_moving_between_the_recent_and_the_settled_part_agree_with_duckdb(url, tmp_path):
    """The profiles that changed at the newest update are stored apart (rewritten whole at each update) from
    the others (moved there when they stop changing, deleted when they change again): wallets that open,
    close, change, stay the same, go missing from an update or come back in another order show exactly once,
    with the same rows as the DuckDB store keeps in one table."""
    w = {i: make_wallet(i) for i in range(1, 7)}
    four = [
        make_position(3, "BTC", 1.0),
        make_position(2, "BTC", -1.0),
        make_position(1, "ETH", 2.0),
        make_position(6, "ETH", -2.0),
    ]
    states = [
        make_state(1, [make_position(1, "BTC", 1.0), make_position(2, "BTC", -1.0)], list(w.values())),
        # 1 closes, 3 opens, 4 changes without positions, 5 is missing from the update
        make_state(
            2,
            [make_position(3, "BTC", 1.0), make_position(2, "BTC", -1.0)],
            [w[1], w[2], w[3], make_wallet(4, perp_equity=4_000.0), w[6]],
        ),
        # 1 opens again, on another coin; 3 changes while holding its position; 5 is back
        make_state(
            3,
            four,
            [w[1], w[2], make_wallet(3, perp_equity=7_000.0), make_wallet(4, perp_equity=4_000.0), w[5], w[6]],
        ),
        # row-aligned with the update before: only 4 changes, the wallets holding positions are carried over
        make_state(
            4,
            four,
            [w[1], w[2], make_wallet(3, perp_equity=7_000.0), make_wallet(4, perp_equity=3_000.0), w[5], w[6]],
        ),
        # every wallet listed in another order (none row-aligned with before): 2 and 3 close
        make_state(
            5,
            [make_position(1, "ETH", 2.0), make_position(6, "ETH", -2.0)],
            [w[6], w[5], make_wallet(4, perp_equity=4_000.0), make_wallet(3, pnl=5.0), w[2], w[1]],
        ),
    ]
    stores = [open_store(tmp_path / "same.duckdb"), open_store(url)]
    try:
        ingestors = [Ingestor(s) for s in stores]
        recent = []
        for state in states:
            seen = []
            for store, ingestor in zip(stores, ingestors, strict=True):
                ingestor.ingest(state)
                seen.append(store._dicts("SELECT * FROM wallets ORDER BY address", []))
            duck, pg = seen
            assert len(pg) == len({r["address"] for r in pg}) == 6
            assert pg == duck, state.height
            recent.append(stores[1]._scalar("SELECT count(*) FROM recent_wallet_rows WHERE gen = %s", (state.height,)))
        # every listed wallet when the list is not row-aligned with the update before; at 4, wallet 4 alone
        assert recent == [6, 5, 6, 1, 6]
    finally:
        for s in stores:
            s.close()


def test_a_new_database_builds_the_lifecycle_and_order_indexes_with_its_first_update(url):
    """They are built whole after the first update's rows (not row by row as it writes them); an update that
    fails leaves them to the next try, and a database that has them keeps them."""
    names = ("lifecycles_coin", "lifecycles_wallet", "order_spans_span", "order_spans_first")

    def built():
        with psycopg.connect(url) as con:
            rows = con.execute("SELECT indexname FROM pg_indexes WHERE indexname = ANY(%s)", (list(names),))
            return sorted(name for (name,) in rows)

    sim = Simulator(preset("tiny", seed=6), genesis_ms=T0)
    store = open_store(url)
    try:
        assert built() == []
        ingestor = Ingestor(store)
        first = sim.step(T0 + 900_000)

        def fail(stage: str) -> None:
            if stage == "ahead_committed":
                raise psycopg.errors.DiskFull("simulated: could not extend file")

        store.fault_hook = fail
        with pytest.raises(StoreUnavailable):
            ingestor.ingest(first)
        assert built() == []
        store.fault_hook = None
        ingestor.ingest(first)
        assert built() == sorted(names)
        ingestor.ingest(sim.step(T0 + 2 * 900_000))
        check_recomputation(store, store.latest().height)
        assert store._scalar("SELECT count(*) FROM positions_open WHERE coin = 'BTC'") > 0
    finally:
        store.close()
