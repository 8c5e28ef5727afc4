"""Who may ask for what: principals and their credentials, always bound to one tenant."""

from certplane.auth.credentials import Credential, CredentialKind, CredentialStore, Principal

__all__ = ["Credential", "CredentialKind", "CredentialStore", "Principal"]
