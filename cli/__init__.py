"""kit's command-line interface."""
