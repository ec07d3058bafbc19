"""Rule bank files shipped with the package (YAML), read with ``importlib.resources``."""
