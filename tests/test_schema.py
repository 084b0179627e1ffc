from __future__ import annotations

import json

from batch.commands.schema import SCHEMA_DIR, schemas


def test_published_json_schemas_are_current() -> None:
    for name, schema in schemas().items():
        published = json.loads((SCHEMA_DIR / name).read_text())
        assert published == schema, f"schemas/{name} is stale: run `pose-batch schema --write`"


def test_the_error_record_builder_writes_the_published_error_record() -> None:
    from batch.errors import KeyTooLong, error_record
    from batch.schema import ErrorRecord

    record = ErrorRecord.model_validate(error_record("invalid_image", "not an image"))
    assert record.model_dump() == {"error": {"code": "invalid_image", "message": "not an image"}}
    assert ErrorRecord.model_validate(KeyTooLong("too long").to_dict()).error.code == "key_too_long"
