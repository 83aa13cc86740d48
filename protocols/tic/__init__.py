"""Linky TIC codec: streaming decoder, encoder, label tables, STGE.

    from protocols.tic import TicDecoder, AUTO, HISTORIC, STANDARD
    d = TicDecoder()
    used, frame = d.decode(buf, start)

See protocols/tic/README.md.  ``encode_group``, ``encode_frame``, ``checksum``
(meter side: simulator, tests, bench) and ``stge`` are imported on first use:
the gateway never encodes, and needs ``stge`` only for standard meters.
"""

from protocols.tic import labels
from protocols.tic.labels import AUTO, HISTORIC, STANDARD
from protocols.tic.decoder import TicDecoder, TicFrame


def __getattr__(name):
    # PEP 562 module __getattr__ (MicroPython has it too): lazy parts of the API
    # ('from protocols.tic import stge' here would recurse into __getattr__)
    if name == 'stge':
        import protocols.tic.stge
        return protocols.tic.stge
    if name == 'encode_group' or name == 'encode_frame' or name == 'checksum':
        import protocols.tic.encoder
        return getattr(protocols.tic.encoder, name)
    raise AttributeError(name)
