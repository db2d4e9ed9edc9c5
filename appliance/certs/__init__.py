"""certs layer (see DESIGN.md)."""
