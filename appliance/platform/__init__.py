"""platform layer (see DESIGN.md)."""
