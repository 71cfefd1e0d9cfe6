import sys

from minicosy.cli import main

sys.exit(main())
