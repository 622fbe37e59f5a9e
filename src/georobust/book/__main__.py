"""``python -m georobust.book``: list, run and build the chapters (see :mod:`georobust.book.runner`)."""

import sys

from .runner import main

sys.exit(main())
