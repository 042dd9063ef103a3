"""`python -m verifier.bench` (make bench)."""

import sys

from verifier.bench.run import main

sys.exit(main())
