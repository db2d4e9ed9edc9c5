"""util layer (see DESIGN.md)."""
