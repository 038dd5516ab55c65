"""`python -m scripts.cli`, as the `ledger` command."""

from scripts.cli import main

if __name__ == "__main__":
    main()
