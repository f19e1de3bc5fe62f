"""``python -m core`` runs the command line (also the frozen app's CLI entry script)."""

from core.cli import main

if __name__ == "__main__":
    main()
