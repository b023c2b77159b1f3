"""nova-conductor (placeholder)."""


class Conductor:
    def __init__(self, services, hub) -> None:
        self.services = services
        self.hub = hub

    async def handle(self, method: str, params: dict):
        raise NotImplementedError(method)

    async def recover(self) -> None:
        return None
