"""Who may ask for what: principals and their credentials, always bound to one tenant."""

from certplane.auth.tokens import ApiToken, Principal, TokenStore

__all__ = ["ApiToken", "Principal", "TokenStore"]
