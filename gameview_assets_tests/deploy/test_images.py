"""The Dockerfiles and docker-compose.yml, checked as far as a machine without a Docker daemon
can: every file an image copies is in the build context, the CUDA image compiles gsplat's
kernels at build time, and Compose accepts the file (`docker-compose config`)."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from gameview_assets_tests.deploy.k8s_cluster import REPO, SECRET_VALUES

CONSTRAINTS = {
    "deploy/Dockerfile": "constraints-gpu.txt",
    "deploy/Dockerfile.cpu": "constraints-cpu.txt",
}
"""Each image and the constraints it installs with."""
DOCKERFILES = list(CONSTRAINTS)
GAMEVIEW_SERVICES = {"code_server", "daemon", "webserver"}


def instructions(relative: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments left out."""
    lines = [
        line for line in (REPO / relative).read_text().splitlines() if not line.startswith("#")
    ]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    result = []
    for line in text.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def in_build_context(path: str) -> bool:
    """Whether .dockerignore lets `path` into the build context (last matching rule wins)."""
    included = True
    for rule in (REPO / ".dockerignore").read_text().splitlines():
        rule = rule.strip()
        if not rule or rule.startswith("#"):
            continue
        negated = rule.startswith("!")
        pattern = rule.lstrip("!")
        if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path.split("/")[0], pattern):
            included = negated
    return included


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_every_copied_file_is_in_the_build_context(dockerfile):
    copies = [args for keyword, args in instructions(dockerfile) if keyword == "COPY"]
    sources = [
        source for args in copies if not args.startswith("--from") for source in args.split()[:-1]
    ]
    assert sources, "the image copies the project"
    for source in sources:
        assert (REPO / source).exists(), source
        assert in_build_context(source), f"{source} is excluded by .dockerignore"


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_each_image_installs_the_project_and_the_viewer_tools(dockerfile):
    runs = " ".join(args for keyword, args in instructions(dockerfile) if keyword == "RUN")
    assert f"pip install -c {CONSTRAINTS[dockerfile]} ." in runs
    assert "python -m gameview_assets.core.viewer install" in runs


def test_the_cuda_image_compiles_gsplat_for_the_common_gpus():
    steps = instructions("deploy/Dockerfile")
    (arch,) = [args for keyword, args in steps if keyword == "ARG" and "TORCH_CUDA_ARCH" in args]
    for capability in ("7.5", "8.0", "8.6", "8.9", "9.0"):
        assert capability in arch
    runs = " ".join(args for keyword, args in steps if keyword == "RUN")
    assert "--no-binary gsplat" in runs  # built from source, kernels and all
    assert "csrc" in runs  # and the build fails unless the compiled extension is there
    assert any(keyword == "FROM" and "cuda" in args and "devel" in args for keyword, args in steps)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_compose_runs_the_three_processes_on_postgres(compose):
    services = compose["services"]
    assert set(services) == {"postgres", *GAMEVIEW_SERVICES}
    for name in GAMEVIEW_SERVICES:
        mounted = {volume.split(":")[0] for volume in services[name]["volumes"]}
        for relative in ("deploy/dagster.yaml", "deploy/workspace.yaml"):
            assert f"./{relative}" in mounted, name
            assert (REPO / relative).is_file(), relative
        env = services[name]["environment"]
        assert env["DAGSTER_PG_HOST"] == "postgres"
        assert env["GAMEVIEW_CODE_SERVER_HOST"] == "code_server"
        for secret in SECRET_VALUES:
            assert env[secret].startswith("${"), f"{secret} must come from the environment"
    port = services["code_server"]["environment"]["GAMEVIEW_CODE_SERVER_PORT"]
    assert services["code_server"]["command"][-1] == port


def test_compose_accepts_the_file():
    """Compose's own validation of the file against its schema (needs no daemon)."""
    if shutil.which("docker-compose"):
        command = ["docker-compose", "-f", "docker-compose.yml", "config", "-q"]
    elif os.environ.get("CI"):
        pytest.fail("docker-compose is not installed (.ci/run installs Debian's)")
    else:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    env = {**os.environ, "DAGSTER_PG_PASSWORD": "only-for-validation"}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    # A missing password is refused rather than defaulted.
    env.pop("DAGSTER_PG_PASSWORD")
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "DAGSTER_PG_PASSWORD" in result.stderr
