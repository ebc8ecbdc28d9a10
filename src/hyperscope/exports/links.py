"""Short-lived download links: the file id and its download name in a token of `signing.Signer` (purpose
`link`).

A link used after it expires, or one that was edited or forged, is refused with Forbidden (403), as
semantics.md section 11 asks.
"""

from __future__ import annotations

from hyperscope.errors import Forbidden
from hyperscope.signing import BadToken, ExpiredToken, Signer

LINK_TTL_SECONDS = 120


class LinkSigner:
    def __init__(self, signer: Signer) -> None:
        self.signer = signer

    def issue(self, file_id: str, name: str) -> str:
        """A link to `file_id`, downloaded as `name`, valid for the signer's ttl."""
        return self.signer.sign({"f": file_id, "n": name})

    def verify(self, token: str) -> tuple[str, str]:
        """(file id, download name) of a valid, unexpired link."""
        try:
            payload = self.signer.open(token)
            return str(payload["f"]), str(payload["n"])
        except ExpiredToken:
            raise Forbidden("download link expired; request the export again") from None
        except (BadToken, KeyError):
            raise Forbidden("invalid download link") from None
