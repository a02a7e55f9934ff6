import sys

from contrastgeo.cli import main

sys.exit(main())
