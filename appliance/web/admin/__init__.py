"""The admin console (/admin), its JSON API (/api/v1), /metrics and invitation signup (/invite/<token>)."""
