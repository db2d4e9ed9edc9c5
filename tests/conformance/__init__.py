"""Conformance tests written from the RFC and XEP texts, run against Parlour and (optionally) ejabberd and Prosody."""
