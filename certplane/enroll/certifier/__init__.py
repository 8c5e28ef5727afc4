"""The xPKI Certifier-compatible front door for libCertifier devices (issue 3 part A)."""

from certplane.enroll.certifier.app import CertifierApi

__all__ = ["CertifierApi"]
