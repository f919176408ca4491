"""Scheduled rotation: replace due tokens without an outage, never losing one.

``rotate(...)`` runs the job; each due token goes issue -> verify -> promote -> (grace) ->
revoke, every step recorded in the vault before the next one starts.
"""

from __future__ import annotations

from tokenguard.rotation.due import DEFAULT_MARGIN, DueReason, due_reasons, expiring_window
from tokenguard.rotation.results import Outcome, RotationReport, RotationResult, Step
from tokenguard.rotation.runner import DEFAULT_WAIT, LOCKED_MESSAGE, Progress, rotate
from tokenguard.rotation.steps import CRASH_ENV, ROTATION_MARKER, RotationVault
from tokenguard.rotation.verify import DEFAULT_MAX_PROBES, Probe, VerifyResult, probes_for

__all__ = [
    "CRASH_ENV",
    "DEFAULT_MARGIN",
    "DEFAULT_MAX_PROBES",
    "DEFAULT_WAIT",
    "LOCKED_MESSAGE",
    "ROTATION_MARKER",
    "DueReason",
    "Outcome",
    "Probe",
    "Progress",
    "RotationReport",
    "RotationResult",
    "RotationVault",
    "Step",
    "VerifyResult",
    "due_reasons",
    "expiring_window",
    "probes_for",
    "rotate",
]
