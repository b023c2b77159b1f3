"""The agent's identity: its host credential (0600 file) and its trust in the controller.

An agent starts with a join token and the controller CA's fingerprint (`--ca-cert-hash`). It
fetches the CA over an unverified TLS connection that carries no secret, refuses it unless the
fingerprint matches, and from then on talks to the controller only over TLS verified against
that CA. The first hello trades the join token for a host credential, stored next to the CA
in the data directory; later starts use only the credential.
"""

from __future__ import annotations

import json
import logging
import ssl
from pathlib import Path
from urllib.parse import urlsplit

from mininova.config import AgentConfig
from mininova.paths import is_loopback, private_dir, write_private
from mininova.tls import (
    PinMismatch,
    client_ssl_context,
    fetch_pinned_ca,
    fingerprint_of_pem,
    parse_pin,
)

log = logging.getLogger(__name__)

CREDENTIAL_FILE = "credential.json"
CA_FILE = "controller-ca.pem"


class AgentRefused(Exception):
    """A refusal that retrying cannot fix (wrong pin, revoked credential...): the agent stops."""


class HostIdentity:
    """Credential and CA of one agent data directory."""

    def __init__(self, config: AgentConfig, host: str) -> None:
        self.config = config
        self.host = host
        self.data_dir = Path(config.data_dir)
        self.credential_file = self.data_dir / CREDENTIAL_FILE
        self.ca_file = self.data_dir / CA_FILE

    # -- credential ---------------------------------------------------------------------------

    def load_credential(self) -> str:
        """The stored host credential ("" before the first join)."""
        try:
            data = json.loads(self.credential_file.read_text())
        except FileNotFoundError:
            return ""
        except (OSError, ValueError) as exc:
            raise AgentRefused(f"cannot read {self.credential_file}: {exc}") from exc
        if data.get("host") != self.host:
            raise AgentRefused(
                f"{self.data_dir} holds the credential of host {data.get('host')!r}, not"
                f" {self.host!r}; use --host {data.get('host')} or another --data-dir"
            )
        return str(data.get("credential") or "")

    def save_credential(self, credential: str) -> None:
        private_dir(self.data_dir)
        body = {"host": self.host, "controller": self.config.controller, "credential": credential}
        write_private(self.credential_file, json.dumps(body) + "\n")
        log.info("enrolled as %s; host credential stored in %s", self.host, self.credential_file)

    # -- controller trust ---------------------------------------------------------------------

    @property
    def uses_tls(self) -> bool:
        return urlsplit(self.config.controller).scheme.lower() in ("https", "wss")

    def check_plain_http(self) -> None:
        """Refuse to send credentials in clear text to anything but loopback."""
        host = urlsplit(self.config.controller).hostname or ""
        if self.uses_tls or is_loopback(host) or self.config.insecure_http:
            return
        raise AgentRefused(
            f"refusing plain ws:// to {host}: the join token and host credential would cross"
            " the network in clear text; use the https:// URL and --ca-cert-hash that"
            " `mininova serve` prints (or --insecure-http to allow it)"
        )

    async def ssl_context(self) -> ssl.SSLContext | None:
        """Trust for an https controller: the pinned CA (fetched once), else the system CAs."""
        if not self.uses_tls:
            return None
        pin = parse_pin(self.config.ca_cert_hash) if self.config.ca_cert_hash else ""
        pem = self.ca_file.read_bytes() if self.ca_file.exists() else b""
        if pem and pin and fingerprint_of_pem(pem) != pin:
            raise AgentRefused(
                f"{self.ca_file} (the controller CA trusted at the first join) does not match"
                f" --ca-cert-hash {pin}; remove it only if the controller's CA really changed"
            )
        if not pem and pin:
            base = self.config.controller.rstrip("/").removesuffix("/agent")
            base = base.replace("wss://", "https://", 1)
            try:
                pem = await fetch_pinned_ca(base, pin)
            except PinMismatch as exc:
                raise AgentRefused(f"{exc}; nothing was sent to the controller") from exc
            private_dir(self.data_dir)
            write_private(self.ca_file, pem)
            log.info("controller CA %s pinned and stored in %s", pin, self.ca_file)
        if not pem:
            log.warning(
                "no --ca-cert-hash given: trusting the system CAs for %s", self.config.controller
            )
            return None
        return client_ssl_context(pem)
