"""Gaussian splat training.

Call `cpu.prepare_cpu_training()` before torch is imported, then: `config.TrainConfig` (no
torch import) with a `densification` strategy (`DefaultDensification`, `MCMCDensification`,
or `densification("default" | "mcmc")`), `data.load_views`, `trainer.train_splat`,
`trainer.render_image`, `checkpoint.save_splats` / `load_splats`. The trainer resumes a
checkpoint only if it was trained on the same views (`TrainingViews.digest`) and config.
`backend.rasterize` picks gsplat's CUDA kernels or our pure-PyTorch `rasterizer` (with
`projection`) by device; `strategy` caps gsplat's DefaultStrategy and `mcmc` runs its
MCMCStrategy without CUDA.
"""
