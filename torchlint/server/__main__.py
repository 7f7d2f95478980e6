import sys

from torchlint.server import main

sys.exit(main())
