"""Glance's image limits: the upload size cap and the per-project image quotas.

As Glance (`image_size_cap` and the unified limits `image_count_total`, `image_size_total`,
`image_count_uploading`): a project over a limit gets 413 from the image API. Counts and
sums are taken in a transaction holding the project's image lock, so parallel requests of one
project take turns and cannot all pass the same check. Snapshots (createImage, shelve) are
images of the server's project and count the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mininova.errors import QuotaExceeded
from mininova.store import images

if TYPE_CHECKING:
    from mininova.config import ServeConfig
    from mininova.store.engine import Executor, Transaction

MiB = 1024 * 1024
UNLIMITED = -1


class ImageLimitExceeded(QuotaExceeded):
    """An image limit would be exceeded: the image API answers 413 (Glance), the compute
    API 403 as for its other quota errors."""


@dataclass(frozen=True)
class ImageLimits:
    """The image limits in force; -1 means no limit (as an unset Glance option would)."""

    size_cap: int = 1099511627776  # bytes of one image
    count_total: int = UNLIMITED  # images per project
    size_total_mib: int = UNLIMITED  # MiB of image data per project
    count_uploading: int = UNLIMITED  # uploads in progress per project

    @classmethod
    def from_config(cls, config: ServeConfig) -> ImageLimits:
        return cls(
            size_cap=int(config.image_size_cap),
            count_total=int(config.image_count_total),
            size_total_mib=int(config.image_size_total),
            count_uploading=int(config.image_count_uploading),
        )


def lock_key(project_id: str) -> str:
    return f"images:{project_id}"


def _over(project_id: str, resource: str, limit: int, usage: int, delta: int) -> str:
    """oslo.limit's wording, which Glance returns as the 413's explanation."""
    return (
        f"Project {project_id} is over a limit for [Resource {resource} is over limit of "
        f"{limit} due to current usage {usage} and delta {delta}]"
    )


async def check_count_total(tx: Transaction, limits: ImageLimits, project_id: str) -> None:
    """Before a new image record: the project may own one more image (holds its lock)."""
    await tx.lock(lock_key(project_id))
    if limits.count_total < 0:
        return
    usage = await images.count_owned(tx, project_id)
    if usage + 1 > limits.count_total:
        raise ImageLimitExceeded(
            _over(project_id, "image_count_total", limits.count_total, usage, 1)
        )


async def check_upload_start(tx: Transaction, limits: ImageLimits, project_id: str) -> int:
    """Before an upload (holds the lock): one more upload may run and the project is not
    already at its byte quota. The most bytes this upload may bring: the size cap or what
    is left of the quota, whichever is smaller."""
    await tx.lock(lock_key(project_id))
    if limits.count_uploading >= 0:
        usage = await images.count_uploading(tx, project_id)
        if usage + 1 > limits.count_uploading:
            raise ImageLimitExceeded(
                _over(project_id, "image_count_uploading", limits.count_uploading, usage, 1)
            )
    if limits.size_total_mib < 0:
        return limits.size_cap
    used = await images.bytes_owned(tx, project_id)
    left = limits.size_total_mib * MiB - used
    if left <= 0:
        raise ImageLimitExceeded(
            _over(project_id, "image_size_total", limits.size_total_mib, used // MiB, 0)
        )
    return min(limits.size_cap, left)


async def check_upload_end(
    tx: Transaction, limits: ImageLimits, project_id: str, size: int
) -> None:
    """Before an upload becomes active (holds the lock): its `size` bytes still fit, also
    after the project's other uploads that finished meanwhile."""
    await tx.lock(lock_key(project_id))
    if limits.size_total_mib < 0:
        return
    used = await images.bytes_owned(tx, project_id)
    if used + size > limits.size_total_mib * MiB:
        raise ImageLimitExceeded(storage_full(size, limits.size_total_mib * MiB - used))


def storage_full(size: int, remaining: int) -> str:
    """Glance's StorageQuotaFull text, as its upload's 413 shows it."""
    return (
        f"Image exceeds the storage quota: The size of the data {size} will exceed the "
        f"limit. {max(remaining, 0)} bytes remaining."
    )


def too_large(cap: int) -> str:
    """Glance's ImageSizeLimitExceeded text (plus the cap, so the user knows it)."""
    return f"The incoming image is too large: The provided image is too large (limit {cap} bytes)."


async def project_usage(db: Executor, project_id: str) -> dict[str, int]:
    """What the image limits count for a project now (for reports and tests)."""
    return {
        "image_count_total": await images.count_owned(db, project_id),
        "image_count_uploading": await images.count_uploading(db, project_id),
        "image_size_total": await images.bytes_owned(db, project_id),
    }
