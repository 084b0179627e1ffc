"""The names an approval gives an endpoint's new model and configuration: deterministic (a repeated event
finds them), within SageMaker's 63 characters and name pattern, distinct per endpoint and version, and
starting with the group (the approval Lambda's IAM scope)."""

from __future__ import annotations

import re

from batch.registry.approval import derived_name

NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


def test_derived_names_fit_sagemaker_and_the_iam_scope() -> None:
    group, endpoint = "g" * 63, "e" * 63
    names = {derived_name(group, e, v) for e in (endpoint, endpoint[:-1] + "f") for v in (1, 999)}
    assert len(names) == 4
    assert all(NAME.match(n) and n.startswith(group[:40]) for n in names)
    assert derived_name("posebatch", "posebatch-async", 3) == derived_name("posebatch", "posebatch-async", 3)
    assert derived_name("posebatch", "posebatch-async", 3).startswith("posebatch-")
