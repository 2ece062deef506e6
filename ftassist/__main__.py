import sys

from ftassist.cli import main

sys.exit(main())
