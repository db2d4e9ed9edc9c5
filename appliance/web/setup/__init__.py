"""The first-run setup: one-time token, answers → parlour.toml + administrator, the wizard, setup mode."""
