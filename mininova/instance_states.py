"""The one instance state machine: vm_state / task_state / power_state and the API status.

Every service asks this module; nobody else hard-codes a transition. Two tables:
`ACTIONS` says from which states an action may start, which task_state it sets while it runs
and where it lands when the compute host reports success; `status()` derives Nova's API
`status` from (vm_state, task_state).
"""

from __future__ import annotations

from dataclasses import dataclass

# vm_state
ACTIVE = "active"
BUILDING = "building"
PAUSED = "paused"
SUSPENDED = "suspended"
STOPPED = "stopped"
ERROR = "error"
DELETED = "deleted"
SOFT_DELETED = "soft-delete"  # Nova's vm_states.SOFT_DELETED: deleted, reclaimable until reaped
SHELVED = "shelved"
SHELVED_OFFLOADED = "shelved_offloaded"
RESIZED = "resized"  # resized or cold-migrated, waiting for confirm/revert (VERIFY_RESIZE)

# task_state
SCHEDULING = "scheduling"
SPAWNING = "spawning"
POWERING_OFF = "powering-off"
POWERING_ON = "powering-on"
REBOOTING = "rebooting"
REBOOTING_HARD = "rebooting_hard"
PAUSING = "pausing"
UNPAUSING = "unpausing"
SUSPENDING = "suspending"
RESUMING = "resuming"
DELETING = "deleting"
IMAGE_SNAPSHOT = "image_snapshot"
SOFT_DELETING = "soft-deleting"
RESTORING = "restoring"
SHELVING = "shelving"
SHELVING_IMAGE_UPLOADING = "shelving_image_uploading"
SHELVING_OFFLOADING = "shelving_offloading"
UNSHELVING = "unshelving"
REBUILDING = "rebuilding"

# Tasks whose interruption (a controller restart) leaves the guest half-made: ERROR, as Nova.
ERROR_IF_INTERRUPTED = frozenset({REBUILDING})
RESIZE_PREP = "resize_prep"
RESIZE_MIGRATING = "resize_migrating"
RESIZE_MIGRATED = "resize_migrated"
RESIZE_FINISH = "resize_finish"
RESIZE_REVERTING = "resize_reverting"
RESIZE_CONFIRMING = "resize_confirming"
RESIZE_TASK_STATES = (RESIZE_PREP, RESIZE_MIGRATING, RESIZE_MIGRATED, RESIZE_FINISH)

# vm_states from which a snapshot (createImage) may start; it does not change the vm_state.
SNAPSHOT_ALLOWED = frozenset({ACTIVE, STOPPED, PAUSED, SUSPENDED})

# power_state (same integers as mininova.virt.driver)
NOSTATE = 0
RUNNING = 1
PAUSED_POWER = 3
SHUTDOWN = 4
CRASHED = 6
SUSPENDED_POWER = 7

POWER_STATES = (NOSTATE, RUNNING, PAUSED_POWER, SHUTDOWN, CRASHED, SUSPENDED_POWER)


@dataclass(frozen=True)
class Action:
    """An instance action: which vm_states allow it, its task_state, and its landing state."""

    name: str
    allowed: frozenset[str]
    task_state: str
    lands_vm_state: str
    lands_power_state: int
    agent_method: str
    # (origin vm_state, landing vm_state, landing power_state) overriding the landing above
    lands_from: tuple[tuple[str, str, int], ...] = ()

    def landing(self, origin_vm_state: str) -> tuple[str, int]:
        """Where the action lands when it started from `origin_vm_state`."""
        for origin, vm, power in self.lands_from:
            if origin == origin_vm_state:
                return vm, power
        return self.lands_vm_state, self.lands_power_state


def _action(name: str, allowed: set[str], task: str, vm: str, power: int, method: str) -> Action:
    return Action(name, frozenset(allowed), task, vm, power, method)


ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        _action("stop", {ACTIVE, ERROR}, POWERING_OFF, STOPPED, SHUTDOWN, "power_off"),
        _action("start", {STOPPED}, POWERING_ON, ACTIVE, RUNNING, "power_on"),
        _action("reboot", {ACTIVE}, REBOOTING, ACTIVE, RUNNING, "reboot"),
        _action(
            "reboot_hard",
            {ACTIVE, STOPPED, PAUSED, SUSPENDED, ERROR},
            REBOOTING_HARD,
            ACTIVE,
            RUNNING,
            "reboot",
        ),
        _action("pause", {ACTIVE}, PAUSING, PAUSED, PAUSED_POWER, "pause"),
        _action("unpause", {PAUSED}, UNPAUSING, ACTIVE, RUNNING, "unpause"),
        _action("suspend", {ACTIVE}, SUSPENDING, SUSPENDED, SUSPENDED_POWER, "suspend"),
        _action("resume", {SUSPENDED}, RESUMING, ACTIVE, RUNNING, "resume"),
        # Soft delete (reclaim_instance_interval > 0): the guest is powered off and kept, with
        # its allocation and quota, until `restore`, `forceDelete` or the reclaim reaper.
        _action(
            "soft_delete",
            {ACTIVE, STOPPED, PAUSED, SUSPENDED},
            SOFT_DELETING,
            SOFT_DELETED,
            SHUTDOWN,
            "power_off",
        ),
        _action("restore", {SOFT_DELETED}, RESTORING, ACTIVE, RUNNING, "power_on"),
        # shelve: power off, snapshot the root disk (task SHELVING_IMAGE_UPLOADING), SHELVED;
        # then, per `shelved_offload_time`, shelve_offload (mininova/conductor/shelve.py)
        _action(
            "shelve", {ACTIVE, STOPPED, PAUSED, SUSPENDED}, SHELVING, SHELVED, SHUTDOWN, "snapshot"
        ),
        # shelve_offload: the guest destroyed, its host's claim released, host None
        _action(
            "shelve_offload", {SHELVED}, SHELVING_OFFLOADING, SHELVED_OFFLOADED, NOSTATE, "destroy"
        ),
        # unshelve: SHELVED powers on where it is; SHELVED_OFFLOADED is scheduled and spawned
        # from the shelved image (task SPAWNING on the host). A failure clears the task and
        # leaves the vm_state as it was (with a fault), as Nova does.
        _action("unshelve", {SHELVED, SHELVED_OFFLOADED}, UNSHELVING, ACTIVE, RUNNING, "spawn"),
        # Nova: a fresh root disk from the image; a stopped server is stopped again after it
        Action(
            "rebuild",
            frozenset({ACTIVE, STOPPED, ERROR}),
            REBUILDING,
            ACTIVE,
            RUNNING,
            "rebuild",
            lands_from=((STOPPED, STOPPED, SHUTDOWN),),
        ),
    )
}

# vm_states whose guest is kept powered off (or is gone) on purpose: the power-state sync
# leaves them alone.
SHELVED_STATES = frozenset({SHELVED, SHELVED_OFFLOADED})


@dataclass(frozen=True)
class MoveAction:
    """A resize-family action (resize, migrate, confirmResize, revertResize): which
    vm_states allow it, the task_state it starts with and the vm_state it lands in (None: the
    vm_state it had before the resize started, kept in system_metadata `old_vm_state`)."""

    name: str
    allowed: frozenset[str]
    task_state: str | None
    lands_vm_state: str | None


MOVE_ACTIONS: dict[str, MoveAction] = {
    m.name: m
    for m in (
        # task_state steps: resize_prep (API) → resize_migrating (source) → resize_migrated
        # (disk moved) → resize_finish (destination) → vm_state resized, no task
        MoveAction("resize", frozenset({ACTIVE, STOPPED}), RESIZE_PREP, RESIZED),
        MoveAction("migrate", frozenset({ACTIVE, STOPPED}), RESIZE_PREP, RESIZED),
        MoveAction("confirmResize", frozenset({RESIZED}), RESIZE_CONFIRMING, None),
        MoveAction("revertResize", frozenset({RESIZED}), RESIZE_REVERTING, None),
    )
}


def check_move(action: str, vm_state: str, task_state: str | None) -> MoveAction:
    """The MoveAction if it may start now, else raise InvalidState naming why."""
    spec = MOVE_ACTIONS[action]
    _check_may_start(action, spec.allowed, vm_state, task_state)
    return spec


def resize_landing(old_vm_state: str | None) -> str:
    """The vm_state after confirm or revert: the one the server had before (ACTIVE/STOPPED)."""
    return old_vm_state if old_vm_state in (ACTIVE, STOPPED) else ACTIVE


class InvalidState(Exception):
    """The action cannot start from the instance's current state (HTTP 409)."""


def check_action(action: str, vm_state: str, task_state: str | None) -> Action:
    """Return the Action if it may start now, else raise InvalidState naming why."""
    spec = ACTIONS[action]
    _check_may_start(action, spec.allowed, vm_state, task_state)
    return spec


def _check_may_start(
    action: str, allowed: frozenset[str], vm_state: str, task_state: str | None
) -> None:
    """Nova's rule for every action: no task running, and a vm_state the action allows."""
    if task_state is not None:
        raise InvalidState(f"Cannot '{action}' instance while it is in task_state {task_state}")
    if vm_state not in allowed:
        raise InvalidState(f"Cannot '{action}' instance while it is in vm_state {vm_state}")


def can_delete(task_state: str | None) -> bool:
    return task_state != DELETING


# What a DELETE starts (see delete_path).
DELETE_NONE = "none"  # nothing: a delete under way, or a server already soft-deleted
DELETE_SOFT = "soft"
DELETE_HARD = "hard"


def delete_path(vm_state: str, task_state: str | None, host: str | None, soft: bool) -> str:
    """What DELETE /servers/{id} does (`soft`: reclaim_instance_interval > 0).

    A soft delete needs a settled, placed server in a state `soft_delete` starts from;
    anything else (building, ERROR, a task under way) takes the normal delete path. A second
    DELETE of a soft-deleted server leaves it alone (forceDelete deletes it now).
    """
    if not can_delete(task_state):
        return DELETE_NONE
    if vm_state == SOFT_DELETED and task_state is None:
        return DELETE_NONE if soft else DELETE_HARD
    if soft and host and task_state is None and vm_state in ACTIONS["soft_delete"].allowed:
        return DELETE_SOFT
    return DELETE_HARD


def check_force_delete(task_state: str | None) -> None:
    """forceDelete may start from any vm_state with no task running (as Nova), else
    InvalidState."""
    if task_state is not None:
        raise InvalidState(f"Cannot 'forceDelete' instance while it is in task_state {task_state}")


_STATUS_BY_VM_STATE = {
    ACTIVE: "ACTIVE",
    BUILDING: "BUILD",
    STOPPED: "SHUTOFF",
    PAUSED: "PAUSED",
    SUSPENDED: "SUSPENDED",
    ERROR: "ERROR",
    DELETED: "DELETED",
    SOFT_DELETED: "SOFT_DELETED",
    SHELVED: "SHELVED",
    SHELVED_OFFLOADED: "SHELVED_OFFLOADED",
    RESIZED: "VERIFY_RESIZE",
}

_STATUS_BY_TASK_STATE = {
    (ACTIVE, REBOOTING): "REBOOT",
    (ACTIVE, REBOOTING_HARD): "HARD_REBOOT",
    (STOPPED, REBOOTING_HARD): "HARD_REBOOT",
    (PAUSED, REBOOTING_HARD): "HARD_REBOOT",
    (SUSPENDED, REBOOTING_HARD): "HARD_REBOOT",
    (ERROR, REBOOTING_HARD): "HARD_REBOOT",
    (ACTIVE, REBUILDING): "REBUILD",
    (STOPPED, REBUILDING): "REBUILD",
    (ERROR, REBUILDING): "REBUILD",
    **{(vm, task): "RESIZE" for vm in (ACTIVE, STOPPED) for task in RESIZE_TASK_STATES},
    (RESIZED, RESIZE_REVERTING): "REVERT_RESIZE",
}


def status(vm_state: str, task_state: str | None) -> str:
    """Nova's API `status` for a (vm_state, task_state) pair."""
    if task_state is not None:
        special = _STATUS_BY_TASK_STATE.get((vm_state, task_state))
        if special:
            return special
    return _STATUS_BY_VM_STATE.get(vm_state, "UNKNOWN")


def vm_states_for_status(api_status: str) -> list[tuple[str, str | None]] | None:
    """The (vm_state, task_state-or-None-meaning-any) pairs a status filter selects.

    None for an unknown status (the list filter then returns nothing).
    """
    wanted = api_status.upper()
    pairs: list[tuple[str, str | None]] = []
    for (vm, task), name in _STATUS_BY_TASK_STATE.items():
        if name == wanted:
            pairs.append((vm, task))
    for vm, name in _STATUS_BY_VM_STATE.items():
        if name == wanted:
            pairs.append((vm, None))
    return pairs or None


def vm_state_for_power(power_state: int, current_vm_state: str) -> str | None:
    """The vm_state a power-state report implies for a settled instance (no task running).

    Returns None when the report does not change the vm_state. A guest that stopped by
    itself becomes STOPPED (SHUTOFF), as Nova's power-state sync does.
    """
    if current_vm_state in (BUILDING, ERROR, DELETED, SOFT_DELETED, RESIZED) or (
        current_vm_state in SHELVED_STATES
    ):
        return None
    mapping = {
        RUNNING: ACTIVE,
        SHUTDOWN: STOPPED,
        CRASHED: STOPPED,
        PAUSED_POWER: PAUSED,
        SUSPENDED_POWER: SUSPENDED,
    }
    target = mapping.get(power_state)
    if target is None or target == current_vm_state:
        return None
    return target
