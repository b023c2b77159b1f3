"""nova-consoleauth (placeholder)."""


class ConsoleAuth:
    def __init__(self, services) -> None:
        self.services = services

    async def handle(self, method: str, params: dict):
        raise NotImplementedError(method)
