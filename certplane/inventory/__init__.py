"""The certificate inventory: every record, served by a key or an index, never by a scan."""

from certplane.inventory.models import CertificateRecord
from certplane.inventory.repository import Inventory, Page

__all__ = ["CertificateRecord", "Inventory", "Page"]
