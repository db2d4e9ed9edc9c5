"""xmpp layer (see DESIGN.md)."""
