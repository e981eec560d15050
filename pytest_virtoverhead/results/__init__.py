"""Results: the model the round runner fills (:mod:`.model`), the typed,
versioned run document ``--virt-json`` holds (:mod:`.document`) and the
step from one to the other (:mod:`.build`).

Nothing here imports pytest.
"""

from .build import empty_document, record_of, run_document
from .document import (
           JSON_VERSION,
           READ_VERSIONS,
           ClaimEntry,
           DocumentError,
           EnvEntry,
           ItemRecord,
           RunDocument,
           check_version,
           json_safe,
           write_json_atomic,
)
from .model import ClaimResult, ItemResult, RoundRecord

__all__ = ["JSON_VERSION", "READ_VERSIONS", "ClaimEntry", "ClaimResult", "DocumentError", "EnvEntry", "ItemRecord",
           "ItemResult", "RoundRecord", "RunDocument", "check_version", "empty_document", "json_safe",
           "record_of", "run_document", "write_json_atomic"]
