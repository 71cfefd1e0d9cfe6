import sys

from minicosy.system.cli import main

sys.exit(main())
