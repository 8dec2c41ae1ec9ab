"""``python -m fgra_core.study``: the study runner's command line."""
from fgra_core.study.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
