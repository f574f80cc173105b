"""The Dagster UI after what a new user does first: `gameview process` on the sample (the
demo), then one refused upload. Asked through the real webserver's GraphQL API (what the UI
pages show), and photographed with headless Chromium where it is installed."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

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
PICTURES = {
    "frames": ["contact_sheet"],
    "sparse_model": ["registration"],
    "splat": ["preview_step_"],
    "bundle": ["thumbnail", "turntable"],
}
"""Each stage's pictures, by metadata key (prefix), on its latest materialization."""
LOADED_PICTURE = (
    "[...document.images].some(i => i.src.includes('/logs/') && i.complete && i.naturalWidth)"
)


def shows(text: str) -> str:
    return f"(document.body?.innerText ?? '').includes({json.dumps(text)})"


PAGES = {
    # The timeline lists a job only for runs whose origin names its code location.
    "overview": ("/overview/activity/timeline", shows(PROCESS_JOB_NAME)),
    "job_runs": (f"/locations/{CODE_LOCATION}/jobs/{PROCESS_JOB_NAME}/runs", shows(GOOD)),
    "frames_partition": (f"/assets/frames?view=partitions&partition={GOOD}", LOADED_PICTURE),
    "bundle_partition": (f"/assets/bundle?view=partitions&partition={GOOD}", LOADED_PICTURE),
    "sparse_model_checks": ("/assets/sparse_model?view=checks", shows(CHECKS["sparse_model"])),
}
"""Page, and what it shows once it has loaded (the screenshot waits for it)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """A demo-like run and a refused upload in one instance, and a webserver on it. The run
    uses the smoke preset: the UI shows the same stages and pictures as the demo's preview,
    in a third of the time (test_pipeline runs the preview)."""
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
        assert main(["process", str(video), "--preset", "smoke", "--production", GOOD]) == 0
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
    from dagster import DagsterInstance, DagsterRunStatus

    from gameview_assets.definitions import defs
    from gameview_assets.local_runs import run_production
    from gameview_assets.partitions import productions

    instance = DagsterInstance.get()
    instance.add_dynamic_partitions(productions.name, [REFUSED])
    job = defs().resolve_job_def(PROCESS_JOB_NAME)
    status = run_production(instance, job, REFUSED, str(uuid.uuid4()), tags={}, run_config={})
    assert status == DagsterRunStatus.FAILURE


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


def test_cli_runs_are_on_the_overview_timeline(served) -> None:
    """The timeline files each run under the code location and repository of the run's origin
    (the UI's `CompletedRunTimelineQuery` asks for `repositoryOrigin`, and skips runs without
    one); the CLI's run and the refused upload's both name the served location."""
    url, _ = served
    data = graphql(
        url,
        "{ runsOrError(filter: {statuses: [SUCCESS, FAILURE]}) { ... on Runs { results { "
        "pipelineName repositoryOrigin { repositoryName repositoryLocationName } "
        "tags { key value } } } } }",
    )
    served_origin = {"repositoryName": "__repository__", "repositoryLocationName": CODE_LOCATION}
    origins = {
        tag["value"]: (run["pipelineName"], run["repositoryOrigin"])
        for run in data["runsOrError"]["results"]
        for tag in run["tags"]
        if tag["key"] == "dagster/partition"
    }
    assert origins == {
        GOOD: (PROCESS_JOB_NAME, served_origin),
        REFUSED: (PROCESS_JOB_NAME, served_origin),
    }


def test_pictures_are_short_markdown_the_webserver_serves(served) -> None:
    """The UI draws a Markdown value in place only under 1,000 characters; each picture's is
    a link to a JPEG that the webserver itself serves."""
    url, _ = served
    for stage, keys in PICTURES.items():
        data = graphql(
            url,
            f'{{ assetOrError(assetKey: {{path: ["{stage}"]}}) {{ ... on Asset {{ '
            f'assetMaterializations(partitions: ["{GOOD}"], limit: 1) {{ metadataEntries {{ '
            "label ... on MarkdownMetadataEntry { mdStr } } } } } }",
        )
        (materialization,) = data["assetOrError"]["assetMaterializations"]
        pictures = [
            entry["mdStr"]
            for entry in materialization["metadataEntries"]
            if any(entry["label"].startswith(key) for key in keys)
        ]
        assert len(pictures) >= len(keys), (stage, materialization)
        for markdown in pictures:
            assert len(markdown) < 1000, markdown
            path = markdown.rsplit("](", 1)[1].rstrip(")")
            assert path.startswith("/logs/"), markdown
            with urllib.request.urlopen(f"{url}{path}", timeout=60) as response:
                assert response.headers["Content-Type"] == "image/jpeg"
                with Image.open(io.BytesIO(response.read())) as image:
                    assert image.format == "JPEG" and image.width >= 100


def test_pages_render_in_chromium(served) -> None:
    """Screenshots for people (kept in GAMEVIEW_SCREENSHOTS when set), each taken once the page
    shows what it is for: the timeline the CLI's job, the partition pages a loaded picture."""
    from gameview_assets_tests.core.browser import screenshot

    url, root = served
    out = Path(os.environ.get("GAMEVIEW_SCREENSHOTS", root / "screenshots"))
    out.mkdir(parents=True, exist_ok=True)
    for name, (page, ready) in PAGES.items():
        pixels = screenshot(f"{url}{page}", 1400, 2000, ready)
        Image.fromarray(pixels).save(out / f"{name}.png")
        assert pixels.std() > 10, f"{name} rendered blank"
