"""``python -m fastbackprop``: the same as the ``fastbackprop`` command."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
