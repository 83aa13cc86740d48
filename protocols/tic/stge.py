"""STGE status register (standard mode, Enedis-NOI-CPT_54E v3 section 6.2.3.14).

The data is 8 hex chars, the 32-bit value written MSB first; bit 0 is the LSB
of the integer (the last hex digit).  Users often number bits from the left:
don't.
"""

from protocols.errors import UsageError

COLORS = (None, 'BLEU', 'BLANC', 'ROUGE')


def value(hex8):
    """The register as an int; raises UsageError unless ``hex8`` is 8 hex chars."""
    if not isinstance(hex8, str) or len(hex8) != 8:
        raise UsageError('STGE must be 8 hex characters')
    for c in hex8:
        if not ('0' <= c <= '9' or 'A' <= c <= 'F' or 'a' <= c <= 'f'):
            raise UsageError('STGE must be 8 hex characters')
    return int(hex8, 16)


def colors(hex8):
    """Tempo colours ``(today, tomorrow)``: 'BLEU', 'BLANC', 'ROUGE' or None
    (bits 24-25 and 26-27; 0 = none / not announced yet)."""
    v = value(hex8)
    return COLORS[(v >> 24) & 3], COLORS[(v >> 26) & 3]


def decode(hex8):
    """Decode STGE into a dict of ints and strings.

    Keys: ``value`` (int), ``dry_contact_open`` (bit 0: 0 = closed, per the
    spec), ``breaker`` (bits 1-3: 0 closed, 1..6 open and why), ``cover_open``,
    ``overvoltage``, ``overload`` (reference power exceeded), ``producer``,
    ``injecting`` (active energy negative), ``supplier_index`` (1..10, = NTARF),
    ``distributor_index`` (1..4), ``clock_degraded``, ``standard_mode``,
    ``euridis`` (0 off, 1 on without security, 3 on with security),
    ``cpl_status`` (0 New/Unlock, 1 New/Lock, 2 Registered), ``cpl_sync``,
    ``tempo_today`` / ``tempo_tomorrow`` ('BLEU'/'BLANC'/'ROUGE'/None),
    ``pm_notice`` (mobile-peak pre-notice 0..3), ``pm_active`` (0..3).
    """
    v = value(hex8)
    return {
        'value': v,
        'dry_contact_open': v & 1,
        'breaker': (v >> 1) & 7,
        'cover_open': (v >> 4) & 1,
        'overvoltage': (v >> 6) & 1,
        'overload': (v >> 7) & 1,
        'producer': (v >> 8) & 1,
        'injecting': (v >> 9) & 1,
        'supplier_index': ((v >> 10) & 15) + 1,
        'distributor_index': ((v >> 14) & 3) + 1,
        'clock_degraded': (v >> 16) & 1,
        'standard_mode': (v >> 17) & 1,
        'euridis': (v >> 19) & 3,
        'cpl_status': (v >> 21) & 3,
        'cpl_sync': (v >> 23) & 1,
        'tempo_today': COLORS[(v >> 24) & 3],
        'tempo_tomorrow': COLORS[(v >> 26) & 3],
        'pm_notice': (v >> 28) & 3,
        'pm_active': (v >> 30) & 3,
    }
