"""A real HTTP server on the loopback interface that answers `POST /info` from fixtures."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.sources.hyperliquid.conftest import load


class InfoServer:
    """Answers by request type; `users[(user, dex)]` are clearinghouseState answers; `fail_next` 429s first."""

    def __init__(self) -> None:
        self.users: dict[tuple[str, str], Any] = {}
        self.spot: dict[str, Any] = {}
        self.vaults: dict[str, Any] = {}
        self.staking: dict[str, Any] = {}
        self.l4: Any = None  # what `fileSnapshot` of `l4Snapshots` writes to its outPath (None: no such request)
        self.fail_next = 0
        self.fail_status = 429
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                if server.fail_next > 0:
                    server.fail_next -= 1
                    return self._send(server.fail_status, {"error": "rate limited"})
                answer = server.answer(body)
                if answer is None:
                    return self._send(422, "Failed to deserialize the JSON body")
                self._send(200, answer)

            def _send(self, status: int, value: Any) -> None:
                data = json.dumps(value).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/info"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, body: dict[str, Any]) -> Any:
        kind = body.get("type")
        user = body.get("user", "")
        if kind == "fileSnapshot" and self.l4 is not None and body["request"]["type"] == "l4Snapshots":
            with open(body["outPath"], "w") as out:  # noqa: PTH123 (as the node's server does: a file on its machine)
                json.dump(self.l4, out)
            return "ok"
        if kind == "perpDexs":
            return load("perp_dexs_camel.json")
        if kind == "metaAndAssetCtxs":
            return load("meta_and_ctxs_xyz.json" if body.get("dex") == "xyz" else "meta_and_ctxs_main.json")
        if kind == "spotMetaAndAssetCtxs":
            return load("spot_meta_and_ctxs.json")
        if kind == "clearinghouseState":
            if not user.startswith("0x") or len(user) != 42 or not all(c in "0123456789abcdef" for c in user[2:]):
                return None
            return self.users.get((user, body.get("dex", "")), empty_state())
        if kind == "spotClearinghouseState":
            return self.spot.get(user, {"balances": []})
        if kind == "userVaultEquities":
            return self.vaults.get(user, [])
        if kind == "delegatorSummary":
            return self.staking.get(
                user,
                {"delegated": "0.0", "undelegated": "0.0", "totalPendingWithdrawal": "0.0", "nPendingWithdrawals": 0},
            )
        return None

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def empty_state() -> dict[str, Any]:
    zero = {"accountValue": "0.0", "totalMarginUsed": "0.0", "totalNtlPos": "0.0", "totalRawUsd": "0.0"}
    return {
        "assetPositions": [],
        "crossMaintenanceMarginUsed": "0.0",
        "crossMarginSummary": zero,
        "marginSummary": zero,
        "time": 1708622398623,
        "withdrawable": "0.0",
    }


def position_state(coin: str, szi: str, entry: str, value: str, liq: str | None, raw: str, cross: bool = True) -> dict:
    state = empty_state()
    leverage = {"type": "cross", "value": 10} if cross else {"type": "isolated", "value": 10, "rawUsd": raw}
    state["assetPositions"] = [
        {
            "type": "oneWay",
            "position": {
                "coin": coin,
                "szi": szi,
                "entryPx": entry,
                "leverage": leverage,
                "liquidationPx": liq,
                "marginUsed": "10.0",
                "maxLeverage": 40,
                "positionValue": value,
                "returnOnEquity": "0.0",
                "unrealizedPnl": "0.0",
                "cumFunding": {"allTime": "5.0", "sinceChange": "1.0", "sinceOpen": "2.5"},
            },
        }
    ]
    total = float(raw) + float(value) * (1 if not szi.startswith("-") else -1)
    state["marginSummary"] = {
        "accountValue": repr(total),
        "totalMarginUsed": "10.0",
        "totalNtlPos": value,
        "totalRawUsd": raw,
    }
    return state
