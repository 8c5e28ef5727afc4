"""`certplane dev`: the whole control plane on one machine over an embedded AWS (moto)."""
