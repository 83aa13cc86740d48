"""Linky TIC codec: streaming decoder, encoder, label tables, STGE.

    from protocols.tic import TicDecoder, AUTO, HISTORIC, STANDARD
    d = TicDecoder()
    used, frame = d.decode(buf, start)

See protocols/tic/README.md.
"""

from protocols.tic import stge
from protocols.tic import labels
from protocols.tic.labels import AUTO, HISTORIC, STANDARD
from protocols.tic.decoder import TicDecoder, TicFrame
from protocols.tic.encoder import encode_group, encode_frame, checksum
