"""`python -m appliance` is the same as the `parlour` command."""

from appliance.cli.main import main

raise SystemExit(main())
