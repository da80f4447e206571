"""watchkeeper: keeps the containers of Docker hosts up to date with their registry images."""

__version__ = "0.1.0"
