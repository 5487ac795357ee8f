"""``python -m stich.cli`` runs the same entry point as the ``stich`` script."""

from stich.cli.main import run

run()
