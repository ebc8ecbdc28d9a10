"""Export files (CSV, JSON), the local folder that holds them and the signed, expiring links to them."""

from hyperscope.exports.builder import Exports
from hyperscope.exports.links import LinkSigner
from hyperscope.exports.positions import OPEN_POSITION_COLUMNS, open_positions_csv
from hyperscope.exports.storage import LocalFiles

__all__ = ["OPEN_POSITION_COLUMNS", "Exports", "LinkSigner", "LocalFiles", "open_positions_csv"]
