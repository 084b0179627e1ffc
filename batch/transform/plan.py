"""Where a batch transform job's files live under the user's output prefix, and the job plan.

    OUTPUT/keypoints/<rel>.json            result or error record per input image (user-facing)
    OUTPUT/annotated/<rel>                 annotated JPEG per input image (user-facing)
    OUTPUT/_SUMMARY.json                   counts, failures, timings of the last job
    OUTPUT/_transform/<job>/plan.json      what the launcher submitted: the header (this module)
    OUTPUT/_transform/<job>/plan/page-N.json  the plan's pages: which images, which shard, refusals
    OUTPUT/_transform/<job>/input.manifest images mode with refusals: the job's ManifestFile input
    OUTPUT/_transform/<job>/manifests/     manifest mode: the JSON Lines shards (the job's input)
    OUTPUT/_transform/<job>/out/           the job's S3OutputPath: `<rel>.out` files
    OUTPUT/_transform/<job>/finalized/<status>/  the finaliser's records: the job as it ended, each page's
                                           and group's outcome, markers (batch.transform.outcomes)

The plan records every input key at launch time, so the finaliser can give each one a result or an
error record even when the job produced nothing for it. It is paged (at most `PAGE_SIZE` images, or
one manifest shard, per page) so that the finaliser reads it a page at a time, whatever the job's
size. Its header's location travels in the job's Environment (`POSEBATCH_PLAN`), which the serving
container ignores.

Manifest mode cuts the keys into shards, the JSON Lines files under `manifests/` (one `ManifestLine`
per image, `batch.manifest_line`). Batch Transform spreads input *files* over instances, and never
mixes the records of two files in one request; so the number and size of the shards decide both how
many instances get work and how many images one request can carry. Each instance gets several shards
so that one slow shard does not idle the others (`build_shards`). A video is a shard of its own: one
request then holds one video, whose time limit is the request's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from batch.manifest_line import ManifestLine
from batch.output_layout import annotated_key, is_video, keypoints_key
from batch.s3_uri import S3Uri

Mode = Literal["images", "manifest"]
PLAN_ENV = "POSEBATCH_PLAN"
PLAN_VERSION = 2
PAGE_SIZE = 256  # images per page in images mode; a page is bounded work for one finaliser step
DEFAULT_SHARDS_PER_INSTANCE = 4
DEFAULT_MAX_IMAGES_PER_SHARD = 256


# The transform job states SageMaker never leaves.
END_STATES = ("Completed", "Failed", "Stopped")


def keypoints_uri(output: S3Uri, rel: str) -> S3Uri:
    return output.child(keypoints_key(rel))


def annotated_uri(output: S3Uri, rel: str) -> S3Uri:
    return output.child(annotated_key(rel))


def summary_uri(output: S3Uri) -> S3Uri:
    return output.child("_SUMMARY.json")


def job_root(output: S3Uri, job_name: str) -> S3Uri:
    return output.child(f"_transform/{job_name}/")


@dataclass
class Shard:
    """One manifest file: its key relative to the manifests prefix and the image keys it lists."""

    rel: str
    images: list[str]


@dataclass(frozen=True)
class Refusal:
    """An input the launcher kept out of the job, and why (its error record's code and message)."""

    rel: str
    code: str
    message: str


@dataclass
class Page:
    """One page of the plan: images the job was given (with their shard in manifest mode), and refusals."""

    images: list[str] = field(default_factory=list)
    shard: str | None = None
    refused: list[Refusal] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> Page:
        data: dict[str, Any] = json.loads(text)
        refused = [Refusal(r["rel"], r["code"], r["message"]) for r in data.get("refused", [])]
        return cls(images=list(data.get("images", [])), shard=data.get("shard"), refused=refused)


@dataclass
class JobPlan:
    """The launcher holds it whole (`keys`, `shards`, `refused`); the header alone is saved as
    `plan.json` and the rest as pages, which readers load one at a time (`page`)."""

    job_name: str
    mode: Mode
    input: str
    output: str
    keys: list[str] = field(default_factory=list)
    shards: list[Shard] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    page_count: int = 0
    image_count: int = 0
    version: int = PLAN_VERSION

    @property
    def input_uri(self) -> S3Uri:
        return S3Uri.parse(self.input, allow_empty_key=True)

    @property
    def output_uri(self) -> S3Uri:
        return S3Uri.parse(self.output, allow_empty_key=True)

    @property
    def root(self) -> S3Uri:
        return job_root(self.output_uri, self.job_name)

    @property
    def plan_uri(self) -> S3Uri:
        return self.root.child("plan.json")

    @property
    def manifests_uri(self) -> S3Uri:
        return self.root.child("manifests/")

    @property
    def input_manifest_uri(self) -> S3Uri:
        """Images mode with refusals: SageMaker's ManifestFile listing the images the job is given."""
        return self.root.child("input.manifest")

    @property
    def transform_output_uri(self) -> S3Uri:
        return self.root.child("out/")

    @property
    def transform_input_uri(self) -> S3Uri:
        if self.mode == "manifest":
            return self.manifests_uri
        return self.input_manifest_uri if self.refused else self.input_uri

    def image_uri(self, rel: str) -> S3Uri:
        return self.input_uri.child(rel)

    def page_uri(self, index: int) -> S3Uri:
        return self.root.child(f"plan/page-{index:06d}.json")

    def pages(self) -> list[Page]:
        """The launcher's pages: images mode in runs of PAGE_SIZE keys, manifest mode one per shard,
        then the refusals in runs of PAGE_SIZE."""
        if self.mode == "manifest":
            pages = [Page(images=shard.images, shard=shard.rel) for shard in self.shards]
        else:
            pages = [Page(images=self.keys[i : i + PAGE_SIZE]) for i in range(0, len(self.keys), PAGE_SIZE)]
        pages += [Page(refused=self.refused[i : i + PAGE_SIZE]) for i in range(0, len(self.refused), PAGE_SIZE)]
        return pages

    def header_json(self) -> str:
        header = {k: v for k, v in asdict(self).items() if k not in ("keys", "shards", "refused")}
        return json.dumps(header, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> JobPlan:
        """The header (`plan.json`): no keys; read them page by page."""
        data: dict[str, Any] = json.loads(text)
        if data.get("version") != PLAN_VERSION:
            raise ValueError(f"unsupported job plan version {data.get('version')!r}")
        return cls(
            job_name=data["job_name"],
            mode=data["mode"],
            input=data["input"],
            output=data["output"],
            page_count=int(data["page_count"]),
            image_count=int(data["image_count"]),
        )

    def save(self, s3: Any) -> None:
        """The pages (in parallel), then the header that counts them."""
        pages = self.pages()
        self.page_count = len(pages)
        self.image_count = len(self.keys) + len(self.refused)

        def put(item: tuple[int, Page]) -> None:
            uri = self.page_uri(item[0])
            s3.put_object(Bucket=uri.bucket, Key=uri.key, Body=item[1].to_json().encode(), ContentType=_JSON)

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(put, enumerate(pages)))
        uri = self.plan_uri
        s3.put_object(Bucket=uri.bucket, Key=uri.key, Body=self.header_json().encode(), ContentType=_JSON)

    @classmethod
    def load(cls, s3: Any, uri: S3Uri) -> JobPlan:
        body = s3.get_object(Bucket=uri.bucket, Key=uri.key)["Body"].read()
        return cls.from_json(body)

    def page(self, s3: Any, index: int) -> Page:
        uri = self.page_uri(index)
        return Page.from_json(s3.get_object(Bucket=uri.bucket, Key=uri.key)["Body"].read())


_JSON = "application/json"


# Manifest mode: the shards (the job's input, under `manifests/`), cut from the plan's keys.
def shard_count(
    n_images: int,
    instance_count: int,
    *,
    shards_per_instance: int = DEFAULT_SHARDS_PER_INSTANCE,
    max_images_per_shard: int = DEFAULT_MAX_IMAGES_PER_SHARD,
) -> int:
    if n_images <= 0:
        return 0
    wanted = max(instance_count * shards_per_instance, math.ceil(n_images / max_images_per_shard))
    return min(n_images, wanted)


def split_evenly(keys: list[str], parts: int) -> Iterator[list[str]]:
    """Contiguous runs of sorted keys (neighbours in a folder stay together), sizes differing by <= 1."""
    size, extra = divmod(len(keys), parts)
    start = 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        yield keys[start:end]
        start = end


def manifest_line(plan: JobPlan, rel: str) -> str:
    """The image and where its outputs go (the container reads it with `ManifestLine.parse`)."""
    output = plan.output_uri
    return ManifestLine(plan.image_uri(rel), keypoints_uri(output, rel), annotated_uri(output, rel)).to_json()


def build_shards(
    plan: JobPlan,
    instance_count: int,
    *,
    shards_per_instance: int = DEFAULT_SHARDS_PER_INSTANCE,
    max_images_per_shard: int = DEFAULT_MAX_IMAGES_PER_SHARD,
) -> list[Shard]:
    images = [key for key in plan.keys if not is_video(key)]
    videos = [[key] for key in plan.keys if is_video(key)]
    count = shard_count(
        len(images),
        instance_count,
        shards_per_instance=shards_per_instance,
        max_images_per_shard=max_images_per_shard,
    )
    parts = [*(list(split_evenly(images, count)) if count else []), *videos]
    width = max(5, len(str(len(parts))))
    return [Shard(rel=f"shard-{i:0{width}d}.jsonl", images=part) for i, part in enumerate(parts)]


def write_shards(s3: Any, plan: JobPlan) -> None:
    def put(shard: Shard) -> None:
        uri = plan.manifests_uri.child(shard.rel)
        body = "".join(manifest_line(plan, rel) + "\n" for rel in shard.images).encode()
        s3.put_object(Bucket=uri.bucket, Key=uri.key, Body=body, ContentType="application/jsonlines")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, plan.shards))
