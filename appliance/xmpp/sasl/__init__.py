"""xmpp/sasl layer (see DESIGN.md)."""
