"""Revocation and status (DESIGN.md §1): sharded CRLs, the OCSP responder, status URLs.

CRLs and OCSP responses are signed through CertBridge (the CA engine's `sign_crl`, and a
delegated OCSP signing certificate the engine issued); this package decides what they say.
"""
