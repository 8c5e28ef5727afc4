"""The fleet simulator (`certplane simulate`): devices that enroll, renew and revoke through EST
and the Certifier API against a running server, and check every certificate they get."""
