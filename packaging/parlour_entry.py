"""Entry script of the frozen executable: the same as `python -m appliance` and the `parlour` command."""

from appliance.cli.main import main

raise SystemExit(main())
