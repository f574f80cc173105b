"""Gaussian splat training.

`config.TrainConfig` (no torch import), `data.load_views`, `trainer.train_splat`,
`trainer.render_image`, `checkpoint.save_splats` / `load_splats`; `backend.rasterize` picks
gsplat's CUDA kernels or the pure-PyTorch `rasterizer` by device.
"""
