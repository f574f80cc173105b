"""GameView processing: videos in, 3D Gaussian Splat scenes out, as Dagster assets."""

import os

# OpenMP threads that spin while waiting run many times slower when another process is busy
# (measured 4-17x on 2 cores); passive waiting costs ~15% on an idle machine. Set before torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
