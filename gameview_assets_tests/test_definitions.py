"""Every definition loads: a broken import or wiring fails here first."""

import itertools

from dagster import AssetCheckKey, AssetKey, Definitions

from gameview_assets.definitions import defs

STAGES = ["source_videos", "frames", "sparse_model", "splat", "bundle"]


def test_definitions_load():
    Definitions.validate_loadable(defs)
    repository = defs.get_repository_def()
    assert {key.to_user_string() for key in repository.asset_graph.get_all_asset_keys()} == set(
        STAGES
    )
    assert repository.has_job("process_production")
    assert {s.name for s in repository.sensor_defs} == {
        "upload_sensor",
        "production_completed_sensor",
        "production_failed_sensor",
        "production_canceled_sensor",
    }


def test_every_stage_is_partitioned_by_production_in_lineage_order():
    graph = defs.get_repository_def().asset_graph
    for upstream, downstream in itertools.pairwise(STAGES):
        assert AssetKey(upstream) in graph.get(AssetKey(downstream)).parent_keys
    for stage in STAGES:
        assert graph.get(AssetKey(stage)).partitions_def.name == "productions"


def test_quality_gates_are_blocking_checks():
    graph = defs.get_repository_def().asset_graph
    checks = {
        AssetCheckKey(AssetKey("sparse_model"), "enough_frames_registered"),
        AssetCheckKey(AssetKey("splat"), "held_out_psnr"),
        AssetCheckKey(AssetKey("bundle"), "valid_ply"),
    }
    assert checks <= set(graph.asset_check_keys)
    assert all(graph.get_check_spec(key).blocking for key in checks)


def test_training_runs_in_the_gpu_pool():
    node = defs.resolve_job_def("process_production").graph.node_dict
    assert node["splat"].definition.pool == "gpu"
