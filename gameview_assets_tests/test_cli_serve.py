"""`gameview serve` checks the Supabase key and bucket before it starts anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from gameview_assets.cli import main
from gameview_assets_tests.resources.fake_supabase import BUCKET, KEY, FakeStorage


@pytest.fixture
def supabase_env(fake: FakeStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPABASE_URL", fake.url)
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", KEY)
    monkeypatch.setenv("GAMEVIEW_BUCKET", BUCKET)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))


@pytest.mark.usefixtures("supabase_env")
def test_serve_says_the_bucket_is_misspelled_and_which_there_are(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GAMEVIEW_BUCKET", "prodcutions")
    assert main(["serve"]) == 1
    error = capsys.readouterr().err
    assert "no bucket 'prodcutions'" in error
    assert "its buckets: productions" in error and "GAMEVIEW_BUCKET" in error


@pytest.mark.usefixtures("supabase_env")
def test_serve_says_the_key_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", "rotated-key")
    assert main(["serve"]) == 1
    error = capsys.readouterr().err
    assert "storage_misconfigured" not in error  # words for a person, not the code
    assert "SUPABASE_SERVICE_ROLE_KEY" in error and "rotated" in error
