"""``python -m aiostore``: the ``aiostore`` command (:mod:`aiostore.cli`)."""

from aiostore.cli import main

if __name__ == "__main__":
    main()
