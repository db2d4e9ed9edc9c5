"""storage/stores layer (see DESIGN.md)."""
