"""EST (RFC 7030) enrollment: routing, authentication, media types and the five operations."""

from certplane.enroll.est.door import EstDoor

__all__ = ["EstDoor"]
