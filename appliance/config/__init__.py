"""config layer (see DESIGN.md)."""
