"""``python -m geo.cli``: the same as the ``factorywatch`` command."""

from geo.cli import main

if __name__ == "__main__":
    main()
