"""Configuration: the schema (spec), loading with file:line errors (load) and the frozen model."""

from appliance.config.load import ConfigError, default_config, load_config, parse_config
from appliance.config.model import Config

__all__ = ["Config", "ConfigError", "default_config", "load_config", "parse_config"]
