"""Automatic certificates over ACME (RFC 8555): pre-flight, ordering, challenges and renewal."""
