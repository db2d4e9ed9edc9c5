"""Parlour: a self-contained XMPP server appliance."""

__version__ = "0.1.0"
