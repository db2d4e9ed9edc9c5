"""Feature modules, one feature each; `appliance/catalog.py` lists the built-in ones (BUILTIN)."""
