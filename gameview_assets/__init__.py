"""GameView processing: videos in, 3D Gaussian Splat scenes out, as Dagster assets."""
