"""Compile gsplat's CUDA kernels on a machine without a GPU, as a check that they build.

Run: python benchmarks/build_gsplat.py --variant device|dockerfile [--python python3.12]
     [--root DIR] [--arch-list L] [--sources FILE ...] [--jobs 2] [--status-file FILE] [--json]

nvcc, the CUDA headers and the CUDA build of torch all come from PyPI, so no CUDA toolkit,
driver or GPU is needed, only time (52 minutes for sm_90 on two loaded cores). Each variant
gets its own virtualenv under `--root` (outside the repository; about 5 GB): torch's CUDA
wheel, the nvidia-* packages of the matching CUDA release, and a CUDA_HOME assembled from them
with symlinks. gsplat's sdist is fetched from PyPI (sha256 checked), unpacked, and built with
`setup.py bdist_wheel` (BUILD_NO_CUDA unset), so `setup.py` compiles the extension exactly as
`pip install --no-build-isolation --no-binary gsplat` would. The outcome, wall time and the
built library's size are printed and written to `<root>/<variant>/result.json`.

Variants (versions in `VARIANTS`):
- `device`: the GPU device machine's torch 2.11.0+cu130 and CUDA 13.0, for sm_90 (H200).
- `dockerfile`: deploy/Dockerfile's torch 2.13.0 and architecture list, but CUDA 13.0, not its
  12.8: no CUDA 12 nvcc can be installed here (nvidia-cuda-nvcc-cu12, up to 12.9.86, ships
  ptxas alone, without nvcc, cicc or cudafe++; Debian bookworm has none), and PyPI's torch
  2.13.0 is built for CUDA 13.0 (its cu128 build, which the Dockerfile installs, is only on
  the PyTorch index). So it checks gsplat against torch 2.13's headers, for five
  architectures; the CUDA 12.8 compiler itself is left to the image build.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

GSPLAT_VERSION = "1.5.3"
GSPLAT_SDIST_URL = (
    "https://files.pythonhosted.org/packages/6d/94/a0963873708223385ac926112dc3e40ab08297784ac53d95"
    "309b4cb5a801/gsplat-1.5.3.tar.gz"
)
GSPLAT_SDIST_SHA256 = "343f080c470e891ba3c697c03bdf0952cb982d1d535fdc24adb23c2cb4fba906"


@dataclass(frozen=True)
class Variant:
    """One combination of torch, CUDA and target architectures to build gsplat against."""

    torch: str
    """torch's exact version on PyPI (its wheel's CUDA is checked against `cuda`)."""
    cuda: str
    """The CUDA release (major.minor) whose nvcc compiles the kernels."""
    pins: tuple[str, ...]
    """pip requirements for nvcc, the CUDA headers and runtime of that release, exact pins."""
    arch_list: str
    """TORCH_CUDA_ARCH_LIST, as torch's cpp_extension reads it."""


# CUDA 13.0.2's compiler, headers and runtime (cuda-toolkit 13.0.2 and 13.0.3 pin the same).
# nvidia-cuda-nvcc leaves nvidia-cuda-crt and nvidia-nvvm unpinned, so they are pinned here to
# the same release (pip would otherwise take 13.5's).
CUDA_13_0 = (
    "nvidia-cuda-nvcc==13.0.88",
    "nvidia-cuda-crt==13.0.88",
    "nvidia-nvvm==13.0.88",
    "nvidia-cuda-cccl==13.0.85",
    "nvidia-cuda-runtime==13.0.96",
)

VARIANTS = {
    # The GPU device: torch 2.11.0+cu130 (PyPI's torch 2.11.0 requires cuda-toolkit==13.0.2).
    "device": Variant(
        torch="2.11.0", cuda="13.0", pins=("cuda-toolkit==13.0.2", *CUDA_13_0), arch_list="9.0"
    ),
    # deploy/Dockerfile's torch and arch list; CUDA 13.0 instead of 12.8 (see the module doc).
    "dockerfile": Variant(
        torch="2.13.0",
        cuda="13.0",
        pins=("cuda-toolkit==13.0.3", *CUDA_13_0),
        arch_list="7.5;8.0;8.6;8.9;9.0+PTX",
    ),
}

# Runs gsplat's setup.py in the build venv. Arguments: the wheel's directory, and the source
# files to keep (comma-separated base names; empty for all).
BUILD_DRIVER = """
import os, runpy, sys
import torch.utils.cpp_extension as ext
keep = [name for name in sys.argv[2].split(",") if name]
if keep:
    extension = ext.CUDAExtension
    ext.CUDAExtension = lambda name, sources, *args, **kwargs: extension(
        name, [s for s in sources if os.path.basename(s) in keep], *args, **kwargs)
sys.argv = ["setup.py", "bdist_wheel", "--dist-dir", sys.argv[1]]
runpy.run_path("setup.py", run_name="__main__")
"""

NINJA_STEP = re.compile(r"^\[(\d+)/(\d+)\] .*?(\S+\.(?:cu|cpp))\b.*?-o (\S+)")


def pip_env() -> dict[str, str]:
    """The environment for pip: PyPI only, ignoring this machine's local wheels and caps."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k == "PIP_CERT"}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def run(cmd: list[str], **kwargs) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kwargs)


def make_venv(variant: Variant, home: Path, interpreter: str) -> Path:
    """Create the variant's virtualenv with torch's CUDA wheel and the CUDA compiler packages."""
    python = home / "venv" / "bin" / "python"
    if not python.exists():
        run([interpreter, "-m", "venv", str(home / "venv")])
    constraints = home / "constraints.txt"
    constraints.write_text(
        "\n".join([f"torch=={variant.torch}", "setuptools<82", *variant.pins]) + "\n"
    )
    pip = ["nice", "-n", "19", str(python), "-m", "pip", "install", "-q", "-c", str(constraints)]
    run([*pip, "pip", "setuptools<82", "wheel", "ninja", "numpy"], env=pip_env())
    run([*pip, f"torch=={variant.torch}", *variant.pins], env=pip_env())
    return python


def site_packages(python: Path) -> Path:
    out = subprocess.check_output(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]
    )
    return Path(out.decode().strip())


def link_tree(source: Path, target: Path) -> None:
    """Mirror `source` into `target` with symlinks to files, merging directories."""
    target.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        dest = target / entry.name
        if entry.is_dir() and not entry.is_symlink():
            link_tree(entry, dest)
        elif not dest.exists():
            dest.symlink_to(entry)


def assemble_cuda_home(python: Path, home: Path) -> Path:
    """A CUDA_HOME (bin, include, lib64, nvvm) of symlinks into CUDA 13's `nvidia/cu13/`.

    torch links `-lcudart`, which only the versioned libcudart.so.13 provides, hence the link.
    """
    cuda_home = home / "cuda"
    shutil.rmtree(cuda_home, ignore_errors=True)
    cu13 = site_packages(python) / "nvidia" / "cu13"
    for part, name in (("bin", "bin"), ("include", "include"), ("lib", "lib64"), ("nvvm", "nvvm")):
        link_tree(cu13 / part, cuda_home / name)
    cudart = sorted((cuda_home / "lib64").glob("libcudart.so.*"))
    if not (cuda_home / "bin" / "nvcc").exists() or not cudart:
        raise SystemExit(f"nvcc or libcudart missing under {cu13}: check the CUDA pins")
    (cuda_home / "lib64" / "libcudart.so").symlink_to(cudart[0].name)
    return cuda_home


def fetch_gsplat(home: Path) -> Path:
    """gsplat's sdist from PyPI, checked and unpacked afresh into `<home>/src`."""
    sdist = home.parent / f"gsplat-{GSPLAT_VERSION}.tar.gz"
    if not sdist.exists():
        with urllib.request.urlopen(GSPLAT_SDIST_URL) as response:
            sdist.write_bytes(response.read())
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != GSPLAT_SDIST_SHA256:
        raise SystemExit(
            f"{sdist}: sha256 {digest}, expected {GSPLAT_SDIST_SHA256}; delete it and rerun"
        )
    src = home / "src"
    shutil.rmtree(src, ignore_errors=True)
    with tarfile.open(sdist) as archive:
        archive.extractall(src, filter="data")
    return src / f"gsplat-{GSPLAT_VERSION}"


def versions(python: Path, cuda_home: Path) -> dict[str, str]:
    torch_info = (
        subprocess.check_output(
            [str(python), "-c", "import torch; print(torch.__version__, torch.version.cuda)"]
        )
        .decode()
        .split()
    )
    nvcc = subprocess.check_output([str(cuda_home / "bin" / "nvcc"), "--version"]).decode()
    gcc = subprocess.check_output(["gcc", "-dumpfullversion"]).decode().strip()
    return {
        "torch": torch_info[0],
        "torch_cuda": torch_info[1],
        "nvcc": re.search(r"V(\d+\.\d+\.\d+)", nvcc).group(1),
        "gcc": gcc,
        "python": subprocess.check_output(
            [str(python), "-c", "import platform; print(platform.python_version())"]
        )
        .decode()
        .strip(),
    }


class Progress:
    """Appends timestamped lines to the status file (ninja steps, the first compiler errors)."""

    def __init__(self, path: Path | None, variant: str) -> None:
        self.path, self.variant, self.errors = path, variant, 0

    def note(self, text: str) -> None:
        line = f"{time.strftime('%H:%M', time.gmtime())} variant {self.variant}: {text}"
        print(line, flush=True)
        if self.path:
            with self.path.open("a") as status:
                status.write(line + "\n")

    def watch(self, line: str) -> None:
        step = NINJA_STEP.match(line)
        if step:
            done, total, source = step.group(1), step.group(2), Path(step.group(3)).name
            self.note(f"[{done}/{total}] compiled {source}")
        elif ("error" in line and ("error:" in line or "error " in line)) and self.errors < 20:
            self.errors += 1
            self.note(f"ERROR {line.strip()[:400]}")


def build(args: argparse.Namespace) -> dict:
    variant = VARIANTS[args.variant]
    home = args.root / args.variant
    home.mkdir(parents=True, exist_ok=True)
    progress = Progress(args.status_file, args.variant)
    python = make_venv(variant, home, args.python)
    cuda_home = assemble_cuda_home(python, home)
    found = versions(python, cuda_home)
    if found["torch_cuda"] != variant.cuda or not found["nvcc"].startswith(variant.cuda + "."):
        raise SystemExit(
            f"torch {found['torch']} is built for CUDA {found['torch_cuda']} and nvcc is "
            f"{found['nvcc']}: expected CUDA {variant.cuda} for both"
        )
    src = fetch_gsplat(home)
    dist = home / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    arch_list = args.arch_list or variant.arch_list
    env = {
        **os.environ,
        "CUDA_HOME": str(cuda_home),
        "PATH": f"{cuda_home / 'bin'}:{python.parent}:{os.environ['PATH']}",
        "TORCH_CUDA_ARCH_LIST": arch_list,
        "MAX_JOBS": str(args.jobs),
    }
    env.pop("BUILD_NO_CUDA", None)
    progress.note(
        f"building gsplat {GSPLAT_VERSION} ({' '.join(args.sources) or 'all files'}) for "
        f"{arch_list} with {found}, {args.jobs} jobs"
    )
    log_path = home / "build.log"
    start = time.monotonic()
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [
                "nice",
                "-n",
                str(args.nice),
                str(python),
                "-c",
                BUILD_DRIVER,
                str(dist),
                ",".join(args.sources),
            ],
            cwd=src,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for line in proc.stdout:
            log.write(line)
            log.flush()
            progress.watch(line)
        code = proc.wait()
    wall = time.monotonic() - start
    libraries = sorted(src.glob("build/lib*/gsplat/csrc*.so"))
    wheels = sorted(dist.glob("*.whl"))
    result = {
        "variant": args.variant,
        "gsplat": GSPLAT_VERSION,
        "arch_list": arch_list,
        "sources": args.sources or "all",
        "jobs": args.jobs,
        "versions": found,
        "built": code == 0 and bool(libraries),
        "exit_code": code,
        "wall_s": round(wall, 1),
        "library": str(libraries[0]) if libraries else None,
        "library_bytes": libraries[0].stat().st_size if libraries else None,
        "wheel": str(wheels[0]) if wheels else None,
        "wheel_bytes": wheels[0].stat().st_size if wheels else None,
        "log": str(log_path),
    }
    (home / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    size = f"{result['library_bytes'] / 2**20:.1f} MiB" if libraries else "no library"
    progress.note(
        f"{'BUILT' if result['built'] else 'FAILED'} in {wall / 60:.1f} min, {size}; log {log_path}"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", choices=sorted(VARIANTS), required=True)
    parser.add_argument(
        "--root",
        type=Path,
        default=Path("/work/gsplat-build"),
        help="where the variant's venv, sources and build go (outside the repository)",
    )
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="the interpreter of the build venv: the library only loads in the same Python minor"
        " (the GPU device runs 3.12)",
    )
    parser.add_argument("--arch-list", help="override the variant's TORCH_CUDA_ARCH_LIST")
    parser.add_argument(
        "--sources",
        nargs="+",
        default=[],
        help="compile only these of gsplat's files (base names, e.g. IntersectTile.cu ext.cpp): a"
        " quicker check; the library then lacks the other files' symbols and is not for use",
    )
    parser.add_argument("--jobs", type=int, default=2, help="MAX_JOBS: parallel compiler processes")
    parser.add_argument("--nice", type=int, default=19, help="niceness of the compile")
    parser.add_argument("--status-file", type=Path, help="append progress and compiler errors here")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    result = build(args)
    print(
        json.dumps(result, indent=2)
        if args.json
        else f"gsplat {GSPLAT_VERSION} ({args.variant}): "
        f"{'built' if result['built'] else 'FAILED'} in {result['wall_s']} s, "
        f"library {result['library_bytes']} bytes"
    )
    sys.exit(0 if result["built"] else 1)


if __name__ == "__main__":
    main()
