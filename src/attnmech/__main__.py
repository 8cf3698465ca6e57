"""``python -m attnmech``: the same as the ``attnmech`` command."""

from .cli import main

if __name__ == "__main__":
    main()
