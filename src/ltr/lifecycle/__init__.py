"""Model lifecycle: bundles, the model store, export and promotion.

``bundle`` and ``store`` are torch-free (serving imports them). ``ltr.lifecycle.export`` needs
torch and is never imported from here: import it where a command needs it.
"""

from ltr.lifecycle.bundle import Bundle, parse_version, read_bundle, verify_bundle, write_bundle
from ltr.lifecycle.store import BundleCheck, ModelStore

__all__ = [
    "Bundle",
    "BundleCheck",
    "ModelStore",
    "parse_version",
    "read_bundle",
    "verify_bundle",
    "write_bundle",
]
