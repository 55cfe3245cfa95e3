"""Bundles for machines with no route to any hub: cached snapshots carried in one verified tar file.

    export_bundle(ExportRequest, settings) -> ExportResult    (hfget bundle export)
    import_bundle(path, settings)          -> ImportResult    (hfget bundle import)
    list_bundle(path, settings)            -> BundleListing   (hfget bundle ls)

manifest.py: the format and its strict reading; archive.py: the tar, read without trusting it; export.py,
importer.py, listing.py: the three commands. Library code: returns data, never prints.
"""

from __future__ import annotations

from .export import ExportedRevision, ExportRequest, ExportResult, export_bundle
from .importer import ImportedRevision, ImportResult, import_bundle
from .listing import BundleListing, ListedRevision, list_bundle

__all__ = [
    "BundleListing", "ExportRequest", "ExportResult", "ExportedRevision", "ImportResult", "ImportedRevision",
    "ListedRevision", "export_bundle", "import_bundle", "list_bundle",
]
