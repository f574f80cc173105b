"""Supabase Storage's `storage` schema on the tests' PostgreSQL server, and its rows kept in
step with the fake Storage server's objects as the real server keeps them.

The tables are those of supabase/storage `migrations/tenant/0002-storage-schema.sql` with the
columns later migrations add to `storage.objects` (path_tokens, version, owner_id,
user_metadata, level), its indexes on bucket and name, row level security, and the trigger
of `0010-add-trigger-to-auto-update-updated_at-column.sql` that sets `updated_at` on every
update. The sensor relies on `bucket_id`, `name`, `id` and `updated_at` only.
"""

from __future__ import annotations

import json
from typing import Any

from gameview_assets_tests.resources.fake_supabase import BUCKET, FakeStorage

STORAGE_SCHEMA = """
CREATE SCHEMA storage;
CREATE TABLE storage.buckets (
    id text NOT NULL PRIMARY KEY,
    name text NOT NULL,
    owner uuid,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now(),
    public boolean DEFAULT false,
    file_size_limit bigint,
    allowed_mime_types text[]
);
CREATE UNIQUE INDEX bname ON storage.buckets USING btree (name);
CREATE TABLE storage.objects (
    id uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
    bucket_id text REFERENCES storage.buckets (id),
    name text,
    owner uuid,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now(),
    last_accessed_at timestamptz DEFAULT now(),
    metadata jsonb,
    path_tokens text[] GENERATED ALWAYS AS (string_to_array(name, '/')) STORED,
    version text,
    owner_id text,
    user_metadata jsonb,
    level integer
);
CREATE UNIQUE INDEX bucketid_objname ON storage.objects USING btree (bucket_id, name);
CREATE INDEX name_prefix_search ON storage.objects USING btree (name text_pattern_ops);
CREATE INDEX idx_objects_bucket_id_name ON storage.objects (bucket_id, name COLLATE "C");
ALTER TABLE storage.objects ENABLE ROW LEVEL SECURITY;
CREATE FUNCTION storage.update_updated_at_column() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at = now();
    RETURN NEW;
END;
$$;
CREATE TRIGGER update_objects_updated_at BEFORE UPDATE ON storage.objects
    FOR EACH ROW EXECUTE PROCEDURE storage.update_updated_at_column();
"""

CHANGES_INDEX = """
CREATE INDEX IF NOT EXISTS gameview_objects_changed
    ON storage.objects (bucket_id, updated_at, id)
"""
"""The index docs/supabase.md asks an operator to add, which keeps a tick's query to the
rows it returns."""


def sensor_grants(role: str, password: str, bucket: str = BUCKET) -> list[str]:
    """The grants docs/supabase.md gives for the sensor's read-only role, as statements."""
    return [
        f"CREATE ROLE {role} LOGIN PASSWORD '{password}'",
        f"ALTER ROLE {role} SET default_transaction_read_only = on",
        f"GRANT USAGE ON SCHEMA storage TO {role}",
        f"GRANT SELECT (id, bucket_id, name, updated_at) ON storage.objects TO {role}",
        f"CREATE POLICY {role}_reads ON storage.objects FOR SELECT TO {role} "
        f"USING (bucket_id = '{bucket}')",
    ]


def create_storage_schema(connection: Any, bucket: str = BUCKET) -> None:
    with connection.cursor() as cursor:
        cursor.execute(STORAGE_SCHEMA)
        cursor.execute("INSERT INTO storage.buckets (id, name) VALUES (%s, %s)", (bucket, bucket))


class MirroredRows:
    """Writes the `storage.objects` row of each object the fake stores or deletes, as the
    real server does in the same request: an upsert on (bucket_id, name) (the trigger moves
    `updated_at` on an overwrite), a delete."""

    def __init__(self, connection: Any, fake: FakeStorage) -> None:
        self.connection = connection
        self.fake = fake
        fake.on_change = self.changed

    def changed(self, key: str, present: bool) -> None:
        with self.connection.cursor() as cursor:
            if not present:
                cursor.execute(
                    "DELETE FROM storage.objects WHERE bucket_id = %s AND name = %s", (BUCKET, key)
                )
                return
            obj = self.fake.objects[key]
            metadata = json.dumps({"eTag": obj.etag, "size": obj.size,
                                   "mimetype": obj.content_type})  # fmt: skip
            cursor.execute(
                "INSERT INTO storage.objects (bucket_id, name, metadata) VALUES (%s, %s, %s) "
                "ON CONFLICT (bucket_id, name) DO UPDATE SET metadata = EXCLUDED.metadata",
                (BUCKET, key, metadata),
            )
