"""Scenario configuration: the typed schema, units, YAML loading, bundled configs, Hugging Face import."""
