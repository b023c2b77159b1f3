"""The server password (Nova's os-server-password), kept in the instance's system_metadata.

As Nova, the (guest-encrypted, base64) password is stored in chunks of 255 characters under
`password_0` … `password_3`; reading joins them, clearing sets every chunk to "". Nothing
here talks to the guest: the password is whatever was stored (by a metadata-service POST in
Nova, which mininova does not serve), so a server nobody stored one for reads "".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mininova.compute.api import Caller, get_server
from mininova.errors import NotFound
from mininova.store import instances

if TYPE_CHECKING:
    from mininova.store import Store
    from mininova.store.engine import Executor, Row

CHUNKS = 4
CHUNK_LENGTH = 255
KEYS = tuple(f"password_{index}" for index in range(CHUNKS))


def extract_password(system_metadata: dict[str, str]) -> str:
    """The stored password: the chunks joined, "" when none was stored."""
    return "".join(str(system_metadata.get(key) or "") for key in KEYS)


def password_chunks(password: str | None) -> dict[str, str]:
    """The system_metadata items storing `password` (None or "": every chunk empty)."""
    text = password or ""
    if len(text) > CHUNKS * CHUNK_LENGTH:
        raise ValueError(f"a server password holds at most {CHUNKS * CHUNK_LENGTH} characters")
    return {
        key: text[index * CHUNK_LENGTH : (index + 1) * CHUNK_LENGTH]
        for index, key in enumerate(KEYS)
    }


async def get_password(db: Executor, caller: Caller, uuid: str) -> str:
    """The caller's server's stored password ("" when none); NotFound for another project's."""
    inst = await get_server(db, caller, uuid)
    return extract_password(inst["system_metadata"])


async def set_password(store: Store, uuid: str, password: str | None) -> None:
    """Store (or, with None, clear) a server's password chunks in its system_metadata."""
    chunks = password_chunks(password)
    async with store.transaction() as tx:
        await tx.lock(f"system_metadata:{uuid}")
        current: Row | None = await instances.get(tx, uuid)
        if current is None:
            raise NotFound(f"Instance {uuid} could not be found.")
        await instances.update(tx, uuid, system_metadata={**current["system_metadata"], **chunks})


async def clear_password(store: Store, caller: Caller, uuid: str) -> None:
    """Nova's "clear admin password": the stored password becomes "" (the guest's own
    password does not change). As Nova, a locked server may be cleared too."""
    inst = await get_server(store, caller, uuid)
    await set_password(store, inst["uuid"], None)
