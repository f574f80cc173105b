"""Thin Dagster assets, one module per stage of a production."""

from gameview_assets.assets.bundle import bundle
from gameview_assets.assets.frames import frames
from gameview_assets.assets.source_videos import source_videos
from gameview_assets.assets.sparse_model import sparse_model
from gameview_assets.assets.splat import splat

all_assets = [source_videos, frames, sparse_model, splat, bundle]
