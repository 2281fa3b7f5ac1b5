"""The project's shared library.

Importing it (every service, the command line and the benchmarks do, through their packages)
keeps numpy's OpenBLAS to one thread. By default OpenBLAS starts a thread per core on its first
matrix product and leaves them spinning after each one: routing, which multiplies a vector by its
examples for every report, burned a whole core that way whatever the load. The services get
their parallelism from replicas and worker processes instead. This must happen before numpy is
imported, hence here.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
