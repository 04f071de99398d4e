"""kit's command-line interface, and `%load_ext kit.cli` for `%kit check` in a notebook."""


def load_ipython_extension(ipython) -> None:
    """IPython's hook for `%load_ext kit.cli`: registers the `%kit` magic (kit.cli.magic, imported only now)."""
    from .magic import load_ipython_extension as load

    load(ipython)
