"""Modbus RTU master codec (see protocols/modbus/README.md).

``protocols.modbus.rtu``: CRC-16, request encoders, the streaming response
decoder; ``protocols.modbus.values``: register values -> numbers;
``protocols.modbus.maps``: meter register maps (imported on its own).
"""

from protocols.modbus.rtu import (  # noqa: F401  (the package API)
    ADU_MAX, READ_HOLDING, READ_INPUT, READ_MAX, STAT_NAMES, WRITE_MAX, WRITE_MULTIPLE,
    WRITE_SINGLE, Response, RtuDecoder, crc16, encode_read, encode_write_multiple,
    encode_write_single, request,
)
