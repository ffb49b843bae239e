"""``python -m caffe_compat ...`` is the ``caffe-compat`` command."""

import sys

from .cli import main

sys.exit(main())
