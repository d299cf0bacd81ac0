"""`python -m aipilot` and the `aipilot` console script."""

from __future__ import annotations


def main() -> None:
    from aipilot.cli.app import run

    run()


if __name__ == "__main__":
    main()
