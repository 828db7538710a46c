"""The dispatcher's tuning: how much it claims, sends and writes at once, and how often.

One typed object, passed to the ``Dispatcher``, so a test that needs another
value says so in its constructor call instead of patching module globals.
The defaults are what production runs with; operator-facing settings (lease
life, poll interval, attempts) stay in ``config.Settings``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Tuning:
    # Orphans resolved per recovery pass.
    recovery_limit: int = 1000
    # A slot hands its results to the writer once it holds this many ...
    flush_every: int = 500
    # ... or once it last did this long ago, so a send shows as sent soon after it.
    flush_after_s: float = 0.25
    # Most messages one provider call sends, one after another.
    send_call: int = 500
    # A call is handed about this many seconds of sends at a time, by the slot's
    # measured pace (one before any send is timed), the rest as it goes: a cancel
    # stops every send not handed yet. Not one at a time: each handing costs the
    # event loop a little, in every one of a thousand sessions' waves.
    handed_at_once_s: float = 0.5
    # A slot claims about this many seconds of work at once (by its measured send
    # time), so recipients are not shown as "sending" long before their turn; its
    # first claim, before any send was timed, is ``first_claim`` recipients: small,
    # so a worker taking up a thousand sessions writes 10,000 rows before its first
    # send, not 20,000, and claims the rest while those first sends wait for
    # WhatsApp. Not smaller: every batch adds a claim to each session's stream of
    # sends, and on a busy machine a first claim of 5 made fan-out slower than 20.
    claim_seconds: float = 2.0
    first_claim: int = 10
    # Leases are renewed (and orphans looked for) this many times per lease life.
    renewals_per_ttl: int = 3
    # Expired Idempotency-Key rows are deleted this often (by any worker).
    purge_every_s: float = 300.0
    # Receipts that came before their send was recorded are looked at this often.
    pending_receipts_every_s: float = 1.0
    # Scheduled broadcasts are looked at this often (by the app clock: tests move it).
    scheduled_every_s: float = 1.0
    # Replies owed to numbers that opted out by a stop word are looked for this often.
    opt_out_replies_every_s: float = 1.0
