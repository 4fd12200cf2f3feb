"""``python -m engine``: the ``syncjob`` command, for a checkout without the entry point."""

from engine.service.cli import main

main()
