"""The instance state machine table."""

from __future__ import annotations

import pytest

from mininova import instance_states as st


@pytest.mark.parametrize(
    ("vm", "task", "status"),
    [
        (st.BUILDING, st.SCHEDULING, "BUILD"),
        (st.ACTIVE, None, "ACTIVE"),
        (st.ACTIVE, st.REBOOTING, "REBOOT"),
        (st.ACTIVE, st.REBOOTING_HARD, "HARD_REBOOT"),
        (st.STOPPED, None, "SHUTOFF"),
        (st.STOPPED, st.POWERING_ON, "SHUTOFF"),
        (st.PAUSED, None, "PAUSED"),
        (st.SUSPENDED, None, "SUSPENDED"),
        (st.ERROR, None, "ERROR"),
        (st.DELETED, None, "DELETED"),
    ],
)
def test_status_from_states(vm: str, task: str | None, status: str) -> None:
    assert st.status(vm, task) == status


@pytest.mark.parametrize(
    ("action", "vm"),
    [
        ("pause", st.PAUSED),
        ("unpause", st.ACTIVE),
        ("suspend", st.SUSPENDED),
        ("resume", st.ACTIVE),
        ("start", st.ACTIVE),
        ("reboot", st.STOPPED),
    ],
)
def test_conflicting_actions_are_refused(action: str, vm: str) -> None:
    with pytest.raises(st.InvalidState):
        st.check_action(action, vm, None)


def test_no_action_while_a_task_runs() -> None:
    with pytest.raises(st.InvalidState):
        st.check_action("stop", st.ACTIVE, st.PAUSING)


def test_every_action_lands_in_a_state_it_can_leave() -> None:
    for spec in st.ACTIONS.values():
        assert st.status(spec.lands_vm_state, None) != "UNKNOWN"
        assert spec.lands_power_state in st.POWER_STATES


def test_power_reports_move_settled_instances() -> None:
    assert st.vm_state_for_power(st.SHUTDOWN, st.ACTIVE) == st.STOPPED
    assert st.vm_state_for_power(st.RUNNING, st.STOPPED) == st.ACTIVE
    assert st.vm_state_for_power(st.RUNNING, st.ACTIVE) is None
    assert st.vm_state_for_power(st.SHUTDOWN, st.BUILDING) is None
