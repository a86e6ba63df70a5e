"""One error type for everything ripdep refuses or fails at, with a stable code and exit status.

Exit statuses are part of the interface (docs/exit-codes.md); never renumber them.
"""

from __future__ import annotations

from typing import Any

# exit status per failure class
EXIT_OK = 0
EXIT_INTERNAL = 1  # a bug or an unexpected host error: report it
EXIT_BAD_INPUT = 2  # name, manifest, flags, env values: nothing was changed
EXIT_PRECONDITION = 3  # not root, systemd not PID 1, PostgreSQL/Caddy missing, host not initialised
EXIT_HEALTH = 4  # the app did not answer its health check through Caddy
EXIT_LOCKED = 5  # another ripdep run holds the app's lock
EXIT_VALIDATION = 6  # a generated unit or Caddy config failed validation; the live one was kept
EXIT_UNKNOWN_APP = 7  # the app is not managed by ripdep
EXIT_APPLY = 8  # a host operation failed while applying (the message says what state the host is in)
EXIT_CONFLICT = 9  # a user, group, role, database, unit or file of that name exists and is not ripdep's
EXIT_DEGRADED = 10  # status --strict: an app is failed, or failing its health check
EXIT_BACKUP = 11  # a backup failed its checksums or its restore verification
EXIT_ROLLED_BACK = 12  # the new release failed its health check or watch; the previous one serves again
EXIT_RELEASE = 13  # the release phase (its backup or its command) failed; the old release still serves
EXIT_PENDING = 14  # plan: at least one app would change (drift, new code, a stopped service) or is busy
EXIT_FLEET = 15  # plan/apply: at least one app failed; the others' outcomes are in the report

CODE_TO_EXIT = {
    "internal": EXIT_INTERNAL,
    "bad_input": EXIT_BAD_INPUT,
    "precondition": EXIT_PRECONDITION,
    "health_check_failed": EXIT_HEALTH,
    "lock_held": EXIT_LOCKED,
    "validation_failed": EXIT_VALIDATION,
    "unknown_app": EXIT_UNKNOWN_APP,
    "apply_failed": EXIT_APPLY,
    "conflict": EXIT_CONFLICT,
    "degraded": EXIT_DEGRADED,
    "backup_invalid": EXIT_BACKUP,
    "rolled_back": EXIT_ROLLED_BACK,
    "release_failed": EXIT_RELEASE,
    "changes_pending": EXIT_PENDING,
    "fleet_failed": EXIT_FLEET,
}


class RipdepError(Exception):
    """An error the operator can act on: message in their vocabulary, a hint for the next step."""

    code = "internal"
    result: Any = None  # what a run had already done when it failed (engine.RunResult), for its report

    def __init__(self, message: str, hint: str | None = None, details: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details or []

    @property
    def exit_status(self) -> int:
        return CODE_TO_EXIT[self.code]

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "hint": self.hint, "details": self.details}


class BadInput(RipdepError):
    code = "bad_input"


class PreconditionFailed(RipdepError):
    code = "precondition"


class HealthCheckFailed(RipdepError):
    code = "health_check_failed"


class LockHeld(RipdepError):
    code = "lock_held"


class ValidationFailed(RipdepError):
    code = "validation_failed"


class UnknownApp(RipdepError):
    code = "unknown_app"


class ApplyFailed(RipdepError):
    code = "apply_failed"


class Conflict(RipdepError):
    code = "conflict"


class Degraded(RipdepError):
    code = "degraded"


class BackupInvalid(RipdepError):
    code = "backup_invalid"


class RolledBack(RipdepError):
    code = "rolled_back"


class ReleaseFailed(RipdepError):
    code = "release_failed"


class ChangesPending(RipdepError):
    code = "changes_pending"


class FleetFailed(RipdepError):
    code = "fleet_failed"
