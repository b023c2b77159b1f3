"""The compute agent (nova-compute): one per host, dials out to the controller.

`Agent(config, driver)` holds the link; `run_agent(config)` builds the driver and runs the
agent until cancelled. Modules: `link` (websocket, backoff), `handlers` (orders),
`specs` (wire dicts ⇄ driver dataclasses), `tunnel` (console data path).
"""

from mininova.agent.service import Agent, run_agent

__all__ = ["Agent", "run_agent"]
