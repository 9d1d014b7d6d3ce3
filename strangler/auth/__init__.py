"""RS256 JWTs: the monolith issues them with its private key; every service verifies them
with the public key alone (from a key file or the monolith's JWKS)."""
