"""Every definition loads: a broken import or wiring fails here first."""

import itertools

import dagster as dg
import pytest
from dagster import AssetCheckKey, AssetKey, Definitions

from gameview_assets.definitions import defs as load_definitions

defs = load_definitions()

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
        "callback_outbox_sensor",
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


def test_storage_stages_retry_with_backoff_and_training_after_a_crash():
    nodes = defs.resolve_job_def("process_production").graph.node_dict
    policies = {stage: nodes[stage].definition.retry_policy for stage in STAGES}
    assert policies["frames"] is None and policies["sparse_model"] is None
    for stage in ("source_videos", "bundle"):
        assert policies[stage].max_retries >= 2
        assert policies[stage].backoff == dg.Backoff.EXPONENTIAL
    assert 1 <= policies["splat"].max_retries <= 2


def test_import_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Definitions are built when loaded, not at import, so a bad setting fails at load."""
    import importlib

    import gameview_assets.definitions as module

    monkeypatch.setenv("SUPABASE_URL", "https://example.supabase.co")
    monkeypatch.delenv("SUPABASE_SERVICE_ROLE_KEY", raising=False)
    importlib.reload(module)
    with pytest.raises(ValueError, match="SUPABASE_SERVICE_ROLE_KEY is not"):
        module.defs()


def test_the_deployment_picks_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    from gameview_assets.resources.storage import LocalStoreResource, SupabaseStoreResource

    monkeypatch.delenv("SUPABASE_URL", raising=False)
    assert isinstance(load_definitions().resources["store"], LocalStoreResource)
    monkeypatch.setenv("SUPABASE_URL", "https://example.supabase.co")
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", "service-key")
    store = load_definitions().resources["store"]
    assert isinstance(store, SupabaseStoreResource)
    assert store.service_role_key == dg.EnvVar("SUPABASE_SERVICE_ROLE_KEY")


def test_the_web_budget_setting_reaches_the_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    from gameview_assets.resources.web_budget import WebBudgetResource
    from gameview_assets.settings import Settings

    monkeypatch.setenv("GAMEVIEW_WEB_MAX_SPLATS", "800_000")
    budget = load_definitions().resources["web_budget"]
    assert budget == WebBudgetResource(max_splats=800_000)
    assert budget.splats_for(preset_max_splats=1_500_000) == 800_000
    assert budget.splats_for(preset_max_splats=1_500_000, run_max_splats=5_000) == 5_000
    assert WebBudgetResource().splats_for(preset_max_splats=10_000) == 10_000
    with pytest.raises(ValueError, match="GAMEVIEW_WEB_MAX_SPLATS='lots' is not a whole number"):
        Settings.from_env({"GAMEVIEW_WEB_MAX_SPLATS": "lots"})
