"""State updates from a Hyperliquid node's files: `--source node` (watching) and `--source replay` (a folder).

Each named snapshot `periodic_abci_states/{date}/{height}.rmp` is one state update (never the
`abci_state.rmp` link: the node swaps it mid-dump; a named file that exists is complete). With it go:
- the fills and misc events of the blocks since the previous snapshot (`events.py`); for the first
  snapshot, the 10,000 blocks before it; older blocks only teach open times and HYPE staked;
- market data: recorded responses in `{folder}/hyperscope/market/{height}.json` when there are some (a
  replay), else, watching a live node, `metaAndAssetCtxs` fetched from the Info API at once (and recorded
  under the data folder, kept 48 h); when that cannot be reached, the snapshot's oracle prices stand in
  for marks and /health says so.

`replay` ingests every snapshot in the folder as fast as it can; `node` catches up (oldest first, or only
the newest with `--catch-up newest`), then polls for new snapshots. The checkpoint (`source.npz` plus
`source.json`) holds the wallet book and where the event streams stopped, saved with the store's height,
never ahead of it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import orjson
import pyarrow as pa

from hyperscope.domain.state import StateUpdate
from hyperscope.errors import ConfigError, SourceUnavailable
from hyperscope.sources.base import Backlog, Ledger, Progress, claim
from hyperscope.sources.hyperliquid.build import Anchors, WalletBook, build_update
from hyperscope.sources.hyperliquid.contexts import MarketContexts, from_recording
from hyperscope.sources.hyperliquid.events import (
    FILLS_DIR,
    MISC_DIR,
    Block,
    BlockStream,
    Flows,
    fills_table,
    flows_of,
)
from hyperscope.sources.hyperliquid.info_client import InfoRejected
from hyperscope.sources.hyperliquid.nodefiles import RECORDS_DIR, SNAPSHOTS_DIR, write_json
from hyperscope.sources.hyperliquid.orders import CLOSE_BLOCKS, L4_DIR, from_hl_node, from_info_server, read_l4_file
from hyperscope.sources.hyperliquid.skips import Skips
from hyperscope.sources.hyperliquid.snapshot import InvalidSnapshot, height_of, read_snapshot

if TYPE_CHECKING:
    from hyperscope.settings import Settings
    from hyperscope.sources.hyperliquid.info_client import InfoClient

log = logging.getLogger("hyperscope.sources.hyperliquid")

BLOCKS_PER_SNAPSHOT = 10_000
RECORDINGS_KEPT_SECONDS = 48 * 3600
# a snapshot that does not read whole while it changed during the read, or is younger than this, may still
# be being written: it is read again later (the pipeline's retries), never rejected for good at once
SETTLE_SECONDS = 30.0
# market data fetched now describes a snapshot only this young; an older one (catch-up, a restart after a
# while) is valued with what was recorded at its time, else with its own oracle prices
MARKET_DATA_MAX_AGE_SECONDS = 300.0


NODE_FLAGS = "--write-fills --write-misc-events --batch-by-block"
LEGACY = {FILLS_DIR: "node_fills", MISC_DIR: "misc_events"}  # one event per line: no block numbers


def event_folder(root: Path, kind: str) -> Path:
    """Where a node keeps the events of `kind` (FILLS_DIR or MISC_DIR), one block per line: the `_by_block`
    folder (`--batch-by-block`), else its `_streaming` twin (`--stream-with-block-info`, the same lines
    written as events are processed). ConfigError, in one line naming the flags, when the node writes them
    only one event per line (no block numbers: they cannot be placed between snapshots)."""
    streaming = root / kind.replace("_by_block", "_streaming")
    if not (root / kind).is_dir() and streaming.is_dir():
        return streaming
    if not (root / kind).is_dir() and (root / LEGACY[kind]).is_dir():
        raise ConfigError(
            f"--node-data: {root} has {LEGACY[kind]}/ (one event per line, no block numbers) but no "
            f"{kind}/; run the node with {NODE_FLAGS} (or --stream-with-block-info)"
        )
    return root / kind


def snapshot_files(root: Path) -> dict[int, Path]:
    """Every named `{height}.rmp` under `periodic_abci_states/`, by height."""
    base = root / SNAPSHOTS_DIR
    found: dict[int, Path] = {}
    if base.is_dir():
        for day in base.iterdir():
            if day.is_dir():
                for path in day.iterdir():
                    height = height_of(path)
                    if height is not None and path.is_file():
                        found[height] = path
    return dict(sorted(found.items()))


class NodeSource:
    """A `Source` over a node's data folder (see the module docstring)."""

    def __init__(
        self,
        root: Path,
        checkpoint: Path,
        *,
        watch: bool,
        catch_up: str = "oldest",
        market: InfoClient | None = None,
        records: Path | None = None,
        anchors: Anchors | None = None,
        poll_seconds: float = 1.0,
        fills_wait_seconds: float = 30.0,
        clock: Callable[[], float] = time.time,
        orders: bool = True,
        info_server: InfoClient | None = None,
        hl_node: Path | None = None,
        hl_chain: str = "Mainnet",
        scratch: Path | None = None,
    ) -> None:
        self.root = root
        self.kind = "node" if watch else "replay"
        self.identity = f"Hyperliquid node data in {root.resolve()}"
        self.checkpoint_path = checkpoint
        self.watch = watch
        self.catch_up = catch_up
        self.market = market
        self.records = records
        self.poll_seconds = poll_seconds
        self.fills_wait_seconds = fills_wait_seconds
        self.book = WalletBook(anchors)
        self.fills = BlockStream(event_folder(root, FILLS_DIR), complete=not watch)
        self.misc = BlockStream(event_folder(root, MISC_DIR), complete=not watch)
        self.clock = clock
        self.skipped: dict[str, int] = {}  # what the last snapshot's events skipped, by kind
        self.account_modes: dict[str, int] = {}  # the last snapshot's accounts per `ust` mode
        self.pooled_wallets = 0  # of them, wallets whose spot balances back their perps (collateral.py)
        self.skipped_total: Counter[str] = Counter()
        self.last_height: int | None = None  # of the newest snapshot turned into an update
        self._stored: int | None = None
        self._saved: int | None = None
        self.market_origin = "none yet"
        self.orders_enabled, self.info_server, self.hl_node, self.hl_chain = orders, info_server, hl_node, hl_chain
        self.scratch = scratch or checkpoint.parent / "l4"
        self.orders_origin = "none yet" if orders else "off (node_orders)"
        self._orders_problem = ""
        self.rejected: dict[str, Any] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> NodeSource:
        from hyperscope.sources.hyperliquid.info_client import InfoClient

        root = settings.node_data
        if root is None or not root.is_dir():
            raise ConfigError(f"--node-data: {root} is not a folder")
        watch = settings.source == "node"
        if not watch and not (root / SNAPSHOTS_DIR).is_dir():
            raise ConfigError(f"--node-data: {root} has no {SNAPSHOTS_DIR}/ folder (is it a node's data folder?)")
        anchors = None
        leaderboard = settings.leaderboard or (root / RECORDS_DIR / "leaderboard.json")
        if leaderboard.is_file():
            try:
                anchors = Anchors.from_leaderboard(orjson.loads(leaderboard.read_bytes()))
            except (orjson.JSONDecodeError, InvalidSnapshot) as e:
                raise ConfigError(f"--leaderboard: {leaderboard} is not a stats leaderboard file ({e})") from e
        elif settings.leaderboard is not None:
            raise ConfigError(f"--leaderboard: {leaderboard} does not exist")
        info_server = None
        if watch and settings.node_orders == "auto" and _on_this_machine(settings.info_url):
            info_server = InfoClient(settings.info_url, settings.info_weight_per_minute, timeout=30.0, retries=0)
        market = None
        if watch and settings.market_info_url:
            # market data must not hold a snapshot back for long: one retry, then oracle prices
            market = InfoClient(settings.market_info_url, settings.info_weight_per_minute, timeout=5.0, retries=1)
        return cls(
            root,
            settings.source_checkpoint_path,
            watch=watch,
            catch_up=settings.catch_up,
            market=market,
            records=settings.data_dir / "market",
            anchors=anchors,
            orders=settings.node_orders == "auto",
            info_server=info_server,
            hl_node=settings.hl_node,
            hl_chain=settings.hl_chain,
            scratch=settings.data_dir / "l4",
        )

    # ------------------------------------------------------------ binding and checkpoints

    @property
    def _state_path(self) -> Path:
        return self.checkpoint_path.with_suffix(".json")

    def attach(self, store: Ledger, progress: Progress | None = None) -> int:
        claim(store, self.identity, str(self.checkpoint_path.parent), "point --node-data at the same folder")
        latest = store.latest()
        if latest is None:
            self.checkpoint_path.unlink(missing_ok=True)
            self._state_path.unlink(missing_ok=True)
            return 0
        self._stored = latest.height
        if self._load(latest.height):
            return 0
        # no checkpoint at the store's height: go on after it; PnL and volume restart from first sight
        log.warning(
            "no checkpoint of the node source at height %d; wallets' PnL and volume are anchored again "
            "at the next snapshot",
            latest.height,
        )
        self.last_height = latest.height
        self._skip_blocks(latest.height)
        return 0

    def _load(self, height: int) -> bool:
        try:
            state = json.loads(self._state_path.read_text())
            if state.get("height") != height or not self.checkpoint_path.exists():
                return False
            if self.book.load(self.checkpoint_path) != height:
                return False
        except (OSError, ValueError, KeyError) as e:
            log.warning("node source checkpoint unreadable (%s); starting after the store's newest update", e)
            self.book = WalletBook(self.book.anchors)
            return False
        self.fills.restore(state["fills"])
        self.misc.restore(state["misc"])
        self.last_height = height
        return True

    def _skip_blocks(self, height: int) -> None:
        for stream in (self.fills, self.misc):
            stream.until(height)

    def stored(self, height: int) -> None:
        self._stored = height
        self.save()

    def save(self) -> None:
        """Checkpoint the book and the streams, only as of the update the store holds."""
        if self._stored is None or self._stored != self.last_height or self._saved == self._stored:
            return
        self.book.save(self.checkpoint_path, self._stored)
        state = {"height": self._stored, "fills": self.fills.state(), "misc": self.misc.state()}
        tmp = self._state_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self._state_path)
        self._saved = self._stored

    # ------------------------------------------------------------ producing updates

    def _due(self) -> list[tuple[int, Path]]:
        files = [
            (h, p) for h, p in snapshot_files(self.root).items() if self.last_height is None or h > self.last_height
        ]
        if self.watch and self.catch_up == "newest" and len(files) > 1:
            log.info("skipping %d older snapshot(s): --catch-up newest", len(files) - 1)
            files = files[-1:]
        return files

    def backlog(self) -> Backlog:
        due = self._due()
        return Backlog(len(due), [partial(self._update, h, p) for h, p in due])

    def next_update(self, stop: threading.Event) -> StateUpdate | None:
        """The next snapshot to land (polled every `poll_seconds`)."""
        while not stop.is_set():
            due = self._due()
            if due:
                return self._update(*due[0])
            stop.wait(self.poll_seconds)
        return None

    def _update(self, height: int, path: Path) -> StateUpdate:
        """Turn one snapshot into a state update; a bad one is rejected whole (InvalidSnapshot, logged), one
        that may still be being written is left for a retry (SourceUnavailable). Events that cannot be read
        are skipped and counted, never the snapshot's reason to fail."""
        before = _stat(path)
        try:
            snapshot = read_snapshot(path, height)
        except InvalidSnapshot as e:
            after = _stat(path)
            if self.watch and (after != before or (after is not None and self.clock() - after[1] < SETTLE_SECONDS)):
                raise SourceUnavailable(
                    f"snapshot {height} did not read whole and may still be being written; reading it again shortly",
                    detail=e.message,
                ) from e
            self._reject(path, height, e)
        skips = Skips()
        self.fills.skips = self.misc.skips = skips
        try:
            if self.last_height is None:  # blocks before the first snapshot's own: open times and staking only
                # (up to 48 h of a busy node's files: read a batch at a time, never all at once)
                for batch in self.misc.batches(height - BLOCKS_PER_SNAPSHOT):
                    self.book.stake(flows_of(batch, skips))
                contexts = self._contexts(height, snapshot.time_ms)
                known = set(contexts.coins) or _all_coins(snapshot)
                for batch in self.fills.batches(height - BLOCKS_PER_SNAPSHOT):
                    self.book.learn_opens(fills_table(batch, known, skips))
            else:
                contexts = self._contexts(height, snapshot.time_ms)
            coins = _all_coins(snapshot)
            fill_tables = [fills_table(batch, coins, skips) for batch in self._batches(self.fills, height)]
            flows = Flows()
            for batch in self._batches(self.misc, height):
                flows.add(flows_of(batch, skips))
            fills = None
            if self.fills.file is not None:
                fills = pa.concat_tables(fill_tables) if fill_tables else fills_table([], coins, skips)
            orders = self._orders(height, path, snapshot.time_ms, _all_coins(snapshot), skips)
            update = build_update(
                snapshot, contexts, self.book, fills=fills, flows=flows, orders=orders, source=self.kind
            )
        except InvalidSnapshot as e:
            self._reject(path, height, e)
        skips.merge(snapshot.skipped)  # the snapshot's own (user states, positions, balances) with the events'
        self.account_modes = snapshot.account_modes
        self.pooled_wallets = snapshot.pooled_wallets
        self.skipped = dict(skips.counts)
        self.skipped_total.update(skips.counts)
        if skips:
            log.warning("snapshot %d: skipped what could not be read: %s", height, skips.summary())
        self.last_height = height
        return update

    def _reject(self, path: Path, height: int, error: InvalidSnapshot) -> NoReturn:
        log.error("rejected %s: %s", path, error.message)
        self.rejected = {"height": height, "reason": error.message}
        self.last_height = height  # never retried: the next snapshot is a whole new state
        raise error

    def _batches(self, stream: BlockStream, height: int) -> Iterator[list[Block]]:
        """The stream's blocks up to `height` in batches; a watching source waits a little for the last ones
        (the node writes a snapshot's last blocks after the snapshot itself)."""
        yield from stream.batches(height)
        deadline = time.monotonic() + (self.fills_wait_seconds if self.watch else 0.0)
        while not stream.reached and stream.file is not None and time.monotonic() < deadline:
            time.sleep(0.2)
            yield from stream.batches(height)
        if not stream.reached and stream.file is not None and self.watch:
            log.warning(
                "%s: no block up to %d after %.0f s; going on without the rest",
                stream.root.name,
                height,
                self.fills_wait_seconds,
            )

    def _contexts(self, height: int, time_ms: int) -> MarketContexts:
        recorded = self.root / RECORDS_DIR / "market" / f"{height}.json"
        if recorded.is_file():
            try:
                contexts = from_recording(orjson.loads(recorded.read_bytes()))
            except orjson.JSONDecodeError as e:
                raise InvalidSnapshot(f"market data recording {recorded.name} is not JSON: {e}") from e
            contexts.origin = f"recorded at the snapshot's time ({contexts.origin})"
        elif self.market is not None and self.clock() - time_ms / 1000 <= MARKET_DATA_MAX_AGE_SECONDS:
            contexts = self._fetch(height, time_ms)
        elif self.market is not None:
            age = self.clock() - time_ms / 1000
            contexts = MarketContexts(
                origin=f"oracle prices only: the snapshot was {age / 60:,.0f} min old when read, "
                "and no market data was recorded at its time (marks fetched now would not "
                "describe it)"
            )
        else:
            contexts = MarketContexts()
        self.market_origin = contexts.origin
        return contexts

    def _orders(self, height: int, path: Path, time_ms: int, coins: set[str], skips: Skips) -> pa.Table | None:
        """Every open order at the snapshot's height, from the first place that has them (orders.py), or None
        (the reason is in /health and logged once)."""
        if not self.orders_enabled:
            return None
        recorded = self.root / RECORDS_DIR / L4_DIR / f"{height}.json"
        found: tuple[int | None, pa.Table] | None = None
        reason = "no L4 file, local info server or hl_node to read orders from"
        try:
            if recorded.is_file():
                found, origin = read_l4_file(recorded, coins, skips), f"recorded L4 file {recorded.name}"
            elif self.info_server is not None and self.clock() - time_ms / 1000 <= MARKET_DATA_MAX_AGE_SECONDS:
                got = from_info_server(self.info_server, self.scratch, coins, skips)
                origin = f"l4Snapshots of the local info server {self.info_server.url}"
                if got[0] is not None and not 0 <= got[0] - height <= CLOSE_BLOCKS:
                    reason = f"the local info server's orders are at height {got[0]}, too far from {height}"
                else:
                    found = got
            if found is None and self.hl_node is not None:
                found = from_hl_node(self.hl_node, self.hl_chain, path, self.scratch, coins, skips)
                origin = f"{self.hl_node.name} compute-l4-snapshots of the snapshot"
        except (SourceUnavailable, InfoRejected, ValueError, OSError) as e:
            reason = f"orders could not be read: {getattr(e, 'message', None) or e}"
            found = None
        if found is None:
            if reason != self._orders_problem:
                log.warning("snapshot %d: no open orders (%s)", height, reason)
            self._orders_problem, self.orders_origin = reason, f"none: {reason}"
            return None
        self._orders_problem, self.orders_origin = "", origin
        return found[1]

    def _fetch(self, height: int, time_ms: int) -> MarketContexts:
        from hyperscope.errors import RetryLater
        from hyperscope.sources.hyperliquid.info_client import fetch_market

        assert self.market is not None
        try:
            record = fetch_market(self.market)
        except RetryLater as e:
            log.warning("market data unavailable for snapshot %d (%s); using oracle prices", height, e.log_text)
            return MarketContexts(origin=f"oracle prices only: the Info API could not be reached ({e.message})")
        if self.records is not None:
            write_json(self.records / f"{height}.json", record | {"time": time_ms})
            self._prune_records()
        contexts = from_recording(record)
        contexts.origin = f"fetched at the snapshot's time ({contexts.origin})"
        return contexts

    def _prune_records(self) -> None:
        assert self.records is not None
        cutoff = time.time() - RECORDINGS_KEPT_SECONDS
        for path in self.records.glob("*.json"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except OSError:
                pass

    def health(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "coverage": "all wallets",
            "last_snapshot": self.last_height,
            "market_data": self.market_origin,
            "orders": self.orders_origin,
            "last_rejected": self.rejected,
            "skipped_last_snapshot": self.skipped,
            "skipped_total": dict(self.skipped_total),
            "account_modes": self.account_modes,
            # wallets whose spot balances back their perps: equity and liquidation follow the documented rule
            # closest to Hyperliquid's (collateral.py, docs/decisions.md), so their figures are approximate
            "collateral_approximated_wallets": self.pooled_wallets,
        }


def _stat(path: Path) -> tuple[int, float] | None:
    """(size, mtime) of a file, None when it is gone."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime


def _on_this_machine(url: str) -> bool:
    """An info server this machine's files are shared with (it writes `fileSnapshot` files for us to read)."""
    from urllib.parse import urlsplit

    return (urlsplit(url).hostname or "") in ("localhost", "127.0.0.1", "::1")


def _all_coins(snapshot: Any) -> set[str]:
    return {c for house in snapshot.clearinghouses for c in house.coins}
