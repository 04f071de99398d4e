"""`python -m kit.cli`: the `kit` command (how `%kit check` starts it, with the kernel's own Python)."""
from .main import main

main()
