"""The Dagster UI after what a new user does first: `gameview process` on the sample (the
demo), then one refused upload. Asked through the real webserver's GraphQL API (what the UI
pages show), and photographed with headless Chromium where it is installed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gameview_assets.cli import main, write_workspace
from gameview_assets.jobs import CODE_LOCATION, PROCESS_JOB_NAME

GOOD, REFUSED = "sample-good", "refused"
STAGES = ["source_videos", "frames", "sparse_model", "splat", "bundle"]
CHECKS = {
    "sparse_model": "enough_frames_registered",
    "splat": "held_out_psnr",
    "bundle": "valid_ply",
}
PAGES = {
    "overview": "/overview/activity/timeline",
    "job_runs": f"/locations/{CODE_LOCATION}/jobs/{PROCESS_JOB_NAME}/runs",
    "bundle_partitions": f"/assets/bundle?view=partitions&partition={GOOD}",
    "sparse_model_checks": "/assets/sparse_model?view=checks",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """A demo run and a refused upload in one instance, and a webserver on it."""
    root = tmp_path_factory.mktemp("ui")
    env = {
        "GAMEVIEW_STORE": str(root / "store"),
        "GAMEVIEW_WORKDIR": str(root / "work"),
        "DAGSTER_HOME": str(root / "dagster"),
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        for key in ("SUPABASE_URL", "GAMEVIEW_CALLBACK_URL"):
            patch.delenv(key, raising=False)
        video = root / "sample.mp4"
        assert main(["sample", str(video)]) == 0
        assert main(["process", str(video), "--preset", "preview", "--production", GOOD]) == 0
        drop_refused_upload(root / "store")
        run_refused_upload()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "dagster_webserver", "-h", "127.0.0.1", "-p", str(port),
         "-w", str(write_workspace(root / "dagster"))],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_loaded(url)
        yield url, root
    finally:
        server.terminate()
        server.wait(timeout=60)


def drop_refused_upload(store: Path) -> None:
    """What the studio app does with a bad file: the "video" is a text file."""
    (store / REFUSED / "videos").mkdir(parents=True)
    (store / REFUSED / "videos" / "clip.mp4").write_text("not a video\n" * 20)
    (store / REFUSED / "production.json").write_text('{"preset": "preview"}')


def run_refused_upload() -> None:
    """The run the upload sensor starts for it (in this process, as the daemon would)."""
    from dagster import DagsterInstance

    from gameview_assets.definitions import defs
    from gameview_assets.jobs import REPOSITORY_LABEL, REPOSITORY_TAG
    from gameview_assets.partitions import productions

    instance = DagsterInstance.get()
    instance.add_dynamic_partitions(productions.name, [REFUSED])
    result = defs().resolve_job_def(PROCESS_JOB_NAME).execute_in_process(
        instance=instance,
        partition_key=REFUSED,
        tags={REPOSITORY_TAG: REPOSITORY_LABEL},
        raise_on_error=False,
    )
    assert not result.success


def graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.loads(response.read())
    assert "errors" not in body, body
    return body["data"]


def wait_until_loaded(url: str, timeout_s: float = 300) -> None:
    """Until the code location is loaded (the webserver starts a code server for it)."""
    query = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            entries = graphql(url, query)["workspaceOrError"]["locationEntries"]
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                return
        except OSError:
            pass
        time.sleep(1)
    raise TimeoutError(f"the webserver at {url} did not load the code location")


def test_cli_runs_are_listed_under_the_job_like_any_other(served) -> None:
    url, _ = served
    selector = (
        f'{{pipelineName: "{PROCESS_JOB_NAME}", repositoryName: "__repository__", '
        f'repositoryLocationName: "{CODE_LOCATION}"}}'
    )
    data = graphql(
        url,
        f"{{ pipelineOrError(params: {selector}) {{ __typename ... on Pipeline "
        f"{{ runs {{ status tags {{ key value }} }} }} }} }}",
    )
    runs = data["pipelineOrError"]["runs"]
    by_partition = {
        tag["value"]: run["status"]
        for run in runs
        for tag in run["tags"]
        if tag["key"] == "dagster/partition"
    }
    assert by_partition == {GOOD: "SUCCESS", REFUSED: "FAILURE"}


def test_the_good_production_stays_healthy_beside_the_refused_one(served) -> None:
    url, _ = served
    keys = ", ".join(f'{{path: ["{stage}"]}}' for stage in STAGES)
    data = graphql(
        url,
        f"{{ assetNodes(assetKeys: [{keys}]) {{ assetKey {{ path }} assetPartitionStatuses "
        "{ ... on DefaultPartitionStatuses { materializedPartitions failedPartitions } } } }",
    )
    for node in data["assetNodes"]:
        statuses = node["assetPartitionStatuses"]
        assert GOOD in statuses["materializedPartitions"], node
        assert GOOD not in statuses["failedPartitions"], node
    for stage, check in CHECKS.items():
        executions = graphql(
            url,
            f'{{ assetCheckExecutions(assetKey: {{path: ["{stage}"]}}, checkName: "{check}", '
            "limit: 10) { partition status } }",
        )["assetCheckExecutions"]
        good = [e["status"] for e in executions if e["partition"] == GOOD]
        assert good == ["SUCCEEDED"], (stage, executions)


def test_pages_render_in_chromium(served) -> None:
    """Screenshots for people (kept in GAMEVIEW_SCREENSHOTS when set); none is blank."""
    from gameview_assets_tests.core.browser import chromium

    url, root = served
    out = Path(os.environ.get("GAMEVIEW_SCREENSHOTS", root / "screenshots"))
    out.mkdir(parents=True, exist_ok=True)
    for name, page in PAGES.items():
        shot = out / f"{name}.png"
        subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--window-size=1400,900", "--virtual-time-budget=20000",
             f"--screenshot={shot}", f"{url}{page}"],
            check=True, capture_output=True, timeout=180,
        )  # fmt: skip
        with Image.open(shot) as image:
            pixels = np.asarray(image.convert("L"), dtype=np.float32)
        assert pixels.std() > 10, f"{name} rendered blank"
