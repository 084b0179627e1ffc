"""`python -m batch.training`: the training job (what `container/serve train` runs)."""

import sys

from batch.training.main import main

sys.exit(main())
