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


def test_soft_delete_states() -> None:
    assert st.status(st.SOFT_DELETED, None) == "SOFT_DELETED"
    assert st.vm_states_for_status("SOFT_DELETED") == [(st.SOFT_DELETED, None)]
    assert st.check_action("restore", st.SOFT_DELETED, None).agent_method == "power_on"
    with pytest.raises(st.InvalidState):
        st.check_action("restore", st.ACTIVE, None)
    with pytest.raises(st.InvalidState):
        st.check_action("start", st.SOFT_DELETED, None)
    # A powered-off soft-deleted guest does not turn the server into SHUTOFF.
    assert st.vm_state_for_power(st.SHUTDOWN, st.SOFT_DELETED) is None
    assert st.vm_state_for_power(st.RUNNING, st.SOFT_DELETED) is None


@pytest.mark.parametrize(
    ("vm", "task", "host", "soft", "path"),
    [
        (st.ACTIVE, None, "h1", True, st.DELETE_SOFT),
        (st.STOPPED, None, "h1", True, st.DELETE_SOFT),
        (st.ACTIVE, None, "h1", False, st.DELETE_HARD),
        (st.ERROR, None, "h1", True, st.DELETE_HARD),
        (st.BUILDING, st.SPAWNING, "h1", True, st.DELETE_HARD),
        (st.ACTIVE, st.REBOOTING, "h1", True, st.DELETE_HARD),
        (st.ACTIVE, None, None, True, st.DELETE_HARD),
        (st.SOFT_DELETED, None, "h1", True, st.DELETE_NONE),
        (st.SOFT_DELETED, None, "h1", False, st.DELETE_HARD),
        (st.SOFT_DELETED, st.RESTORING, "h1", True, st.DELETE_HARD),
        (st.ACTIVE, st.DELETING, "h1", True, st.DELETE_NONE),
    ],
)
def test_delete_path(vm: str, task: str | None, host: str | None, soft: bool, path: str) -> None:
    assert st.delete_path(vm, task, host, soft) == path


def test_force_delete_needs_no_task() -> None:
    st.check_force_delete(None)
    with pytest.raises(st.InvalidState, match="forceDelete"):
        st.check_force_delete(st.SOFT_DELETING)
