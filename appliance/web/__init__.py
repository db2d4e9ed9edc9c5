"""web layer (see DESIGN.md)."""

from appliance.web.transport_security import hide_server_version

hide_server_version()  # here, so that no application of ours answers before it: console, wizard, port 80
