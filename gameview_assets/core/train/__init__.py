"""Gaussian splat training.

`config.TrainConfig` (no torch import), `data.load_views`, `trainer.train_splat`,
`trainer.render_image`, `checkpoint.save_splats` / `load_splats`. `backend.rasterize` picks
gsplat's CUDA kernels or our pure-PyTorch `rasterizer` (with `projection`) by device;
`strategy` caps gsplat's DefaultStrategy and `mcmc` runs its MCMCStrategy without CUDA.
"""
