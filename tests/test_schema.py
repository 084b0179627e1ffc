from __future__ import annotations

import json

from batch.commands.schema import SCHEMA_DIR, schemas


def test_published_json_schemas_are_current() -> None:
    for name, schema in schemas().items():
        published = json.loads((SCHEMA_DIR / name).read_text())
        assert published == schema, f"schemas/{name} is stale: run `pose-batch schema --write`"
