"""Export files (JSON, CSV, Parquet), the folder that holds them and the signed, expiring links to them."""

from hyperscope.exports.builder import Exports
from hyperscope.exports.documents import FORMATS, Document
from hyperscope.exports.links import LinkSigner
from hyperscope.exports.positions import OPEN_POSITION_COLUMNS, open_positions_table
from hyperscope.exports.storage import Files, LocalFiles

__all__ = [
    "FORMATS",
    "OPEN_POSITION_COLUMNS",
    "Document",
    "Exports",
    "Files",
    "LinkSigner",
    "LocalFiles",
    "open_positions_table",
]
