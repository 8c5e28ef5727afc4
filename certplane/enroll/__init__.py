"""Enrollment front doors: the xPKI Certifier API (libCertifier) and EST (RFC 7030)."""
